//! Random bytes from the operating system.

use super::AuthError;

/// `N` bytes from the operating system's cryptographic random number generator.
pub(crate) fn bytes<const N: usize>() -> Result<[u8; N], AuthError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|_| AuthError::Randomness)?;
    Ok(buf)
}
