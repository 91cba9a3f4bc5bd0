//! A viewer's code: the address a viewer gives a patient, written so that a person can
//! read it aloud or type it from another screen without a silent mistake.
//!
//! The 20 bytes of the address in Crockford's base32 (32 characters: digits and capital
//! letters without I, L, O and U; typing `i`, `l` or `o` is read as `1`, `1`, `0`, case
//! does not matter), then three check characters from the address's keccak-256, in seven
//! groups of five: `MR` + `3K9QZ-…`. A typo is caught (one wrong character changes the
//! check with probability 1 − 2⁻¹⁵) instead of granting someone else; a hex address typed
//! in lower case has no such check.

use alloy_primitives::{Address, keccak256};
use data_encoding::{Encoding, Specification};
use std::sync::OnceLock;

/// Characters of the data part (160 bits).
const DATA: usize = 32;
/// Check characters (15 bits).
const CHECK: usize = 3;

/// Why a text is not a viewer's code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// Not 35 code characters.
    #[error("a viewer's code has 35 characters in 7 groups of 5 (it has {0})")]
    Length(usize),
    /// A character outside the code's alphabet.
    #[error("'{0}' is not a character of a viewer's code (digits and letters, no U)")]
    Character(char),
    /// The check characters do not match: a character was mistyped.
    #[error(
        "the code's check characters do not match: a character is mistyped; compare it with the viewer's screen"
    )]
    Check,
}

fn crockford() -> &'static Encoding {
    static ENCODING: OnceLock<Encoding> = OnceLock::new();
    ENCODING.get_or_init(|| {
        let mut spec = Specification::new();
        spec.symbols.push_str("0123456789ABCDEFGHJKMNPQRSTVWXYZ");
        spec.translate.from.push_str("abcdefghjkmnpqrstvwxyzIiLlOo");
        spec.translate.to.push_str("ABCDEFGHJKMNPQRSTVWXYZ111100");
        spec.encoding().expect("a valid base32 specification")
    })
}

/// The three check characters of `address`.
fn check(address: Address) -> String {
    let h = keccak256(address.as_slice());
    let bits = (u16::from(h[0]) << 7) | (u16::from(h[1]) >> 1);
    let symbols = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    [10u16, 5, 0]
        .iter()
        .map(|shift| char::from(symbols[usize::from((bits >> shift) & 31)]))
        .collect()
}

/// The viewer's code of `address`: `XXXXX-XXXXX-XXXXX-XXXXX-XXXXX-XXXXX-XXXXX`.
pub fn encode(address: Address) -> String {
    let text = format!("{}{}", crockford().encode(address.as_slice()), check(address));
    text.as_bytes()
        .chunks(5)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("-")
}

/// The address of a viewer's code, as typed: spaces and dashes ignored, any case.
///
/// # Errors
/// [`CodeError`] with what is wrong, in words.
pub fn decode(text: &str) -> Result<Address, CodeError> {
    // Any case; the letters people take for digits read as those digits.
    let chars: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| match c.to_ascii_uppercase() {
            'I' | 'L' => '1',
            'O' => '0',
            other => other,
        })
        .collect();
    let count = chars.chars().count();
    if count != DATA + CHECK {
        return Err(CodeError::Length(count));
    }
    if let Some(bad) = chars.chars().find(|c| !c.is_ascii_alphanumeric() || *c == 'U') {
        return Err(CodeError::Character(bad));
    }
    let (data, given) = chars.split_at(DATA);
    let bytes = crockford()
        .decode(data.as_bytes())
        .map_err(|e| CodeError::Character(data.chars().nth(e.position).unwrap_or('?')))?;
    let address = Address::try_from(bytes.as_slice()).map_err(|_| CodeError::Length(count))?;
    if given != check(address) {
        return Err(CodeError::Check);
    }
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_round_trips_in_any_case_and_with_the_lookalikes() {
        let a: Address = "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65".parse().unwrap();
        let code = encode(a);
        assert_eq!(code.len(), 35 + 6);
        assert_eq!(code.split('-').count(), 7);
        assert!(code.chars().all(|c| c == '-' || "0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(c)));
        assert_eq!(decode(&code).unwrap(), a);
        assert_eq!(decode(&code.to_lowercase().replace('-', " ")).unwrap(), a);
        let lookalike = code.replace('1', "l").replace('0', "O");
        assert_eq!(decode(&lookalike).unwrap(), a);
    }

    #[test]
    fn a_mistyped_character_is_caught() {
        let a = Address::repeat_byte(0x42);
        let code = encode(a);
        let mut caught = 0;
        for (i, c) in code.char_indices().filter(|(_, c)| *c != '-') {
            let other = if c == 'A' { 'B' } else { 'A' };
            let typo = format!("{}{other}{}", &code[..i], &code[i + 1..]);
            match decode(&typo) {
                Err(CodeError::Check) => caught += 1,
                Ok(b) => assert_ne!(b, a, "a typo never decodes to the same address"),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(caught, 35, "every single-character typo fails the check");
        assert_eq!(decode("ABC"), Err(CodeError::Length(3)));
        assert_eq!(
            decode(&format!("{}U", &code[..code.len() - 1])),
            Err(CodeError::Character('U'))
        );
    }
}
