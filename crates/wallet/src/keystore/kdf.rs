//! scrypt for keystores, including the parameters the `scrypt` crate refuses.

use sha2::Sha256;
use zeroize::Zeroizing;

/// scrypt through the `scrypt` crate, which refuses n ≥ 2^(16·r) (an RFC 7914 condition that
/// geth and ethers do not impose). Old keystores such as the Web3 Secret Storage test vector
/// (n = 2^18, r = 1) break it, so those go through [`scrypt_unchecked`].
pub(super) fn scrypt_any(password: &[u8], salt: &[u8], log_n: u8, r: u32, p: u32, out: &mut [u8]) {
    if let Ok(params) = scrypt::Params::new(log_n, r, p, out.len())
        && scrypt::scrypt(password, salt, &params, out).is_ok()
    {
        return;
    }
    scrypt_unchecked(password, salt, log_n, r, p, out);
}

/// scrypt (RFC 7914) without the n < 2^(16·r) condition; the same algorithm as the
/// `scrypt` crate's, with Salsa20/8 from the `salsa20` crate. Parameters are bounded by
/// [`ScryptParams::check`](super::ScryptParams::check) before this runs.
fn scrypt_unchecked(password: &[u8], salt: &[u8], log_n: u8, r: u32, p: u32, out: &mut [u8]) {
    let n = 1usize << log_n;
    let r128 = 128 * r as usize;
    let mut b = Zeroizing::new(vec![0u8; r128 * p as usize]);
    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, 1, &mut b);
    let mut v = Zeroizing::new(vec![0u8; n * r128]);
    let mut t = Zeroizing::new(vec![0u8; r128]);
    for chunk in b.chunks_mut(r128) {
        ro_mix(chunk, &mut v, &mut t, n);
    }
    pbkdf2::pbkdf2_hmac::<Sha256>(password, &b, 1, out);
}

fn ro_mix(b: &mut [u8], v: &mut [u8], t: &mut [u8], n: usize) {
    let len = b.len();
    for chunk in v.chunks_mut(len) {
        chunk.copy_from_slice(b);
        block_mix(chunk, b);
    }
    for _ in 0..n {
        let last = &b[len - 64..len - 60];
        let j = u32::from_le_bytes([last[0], last[1], last[2], last[3]]) as usize & (n - 1);
        for ((t, x), y) in t.iter_mut().zip(b.iter()).zip(&v[j * len..(j + 1) * len]) {
            *t = x ^ y;
        }
        block_mix(t, b);
    }
}

fn block_mix(input: &[u8], output: &mut [u8]) {
    use salsa20::SalsaCore;
    use salsa20::cipher::StreamCipherCore;
    use salsa20::cipher::typenum::U4;

    let half = input.len() / 2;
    let mut x = Zeroizing::new([0u8; 64]);
    x.copy_from_slice(&input[input.len() - 64..]);
    for (i, chunk) in input.chunks(64).enumerate() {
        let mut state = [0u32; 16];
        for (k, word) in state.iter_mut().enumerate() {
            let at = 4 * k;
            *word = u32::from_le_bytes([
                x[at] ^ chunk[at],
                x[at + 1] ^ chunk[at + 1],
                x[at + 2] ^ chunk[at + 2],
                x[at + 3] ^ chunk[at + 3],
            ]);
        }
        SalsaCore::<U4>::from_raw_state(state).write_keystream_block((&mut *x).into());
        let pos = (i / 2) * 64 + if i % 2 == 0 { 0 } else { half };
        output[pos..pos + 64].copy_from_slice(&x[..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc_case(password: &str, salt: &str, log_n: u8, r: u32, p: u32) -> String {
        let mut out = [0u8; 64];
        scrypt_unchecked(password.as_bytes(), salt.as_bytes(), log_n, r, p, &mut out);
        hex::encode(out)
    }

    #[test]
    fn unchecked_scrypt_matches_rfc7914() {
        assert_eq!(
            rfc_case("", "", 4, 1, 1),
            "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906"
        );
        assert_eq!(
            rfc_case("password", "NaCl", 10, 8, 16),
            "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"
        );
    }

    #[test]
    fn unchecked_scrypt_matches_the_crate() {
        for (log_n, r, p) in [(4, 1, 1), (6, 2, 3), (10, 8, 1)] {
            let mut ours = [0u8; 32];
            let mut theirs = [0u8; 32];
            scrypt_unchecked(b"pw", b"salt", log_n, r, p, &mut ours);
            let params = scrypt::Params::new(log_n, r, p, 32).unwrap();
            scrypt::scrypt(b"pw", b"salt", &params, &mut theirs).unwrap();
            assert_eq!(ours, theirs, "n=2^{log_n} r={r} p={p}");
        }
    }
}
