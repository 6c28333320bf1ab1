use std::fmt;

use phonenumber::Mode;
use phonenumber::country::Id as Region;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneNumberError {
    #[error("phoneNumber is missing")]
    Missing,
    #[error("phoneNumber `{0}` cannot be parsed as a phone number")]
    Unparseable(String),
    #[error("phoneNumber `{0}` is not a valid number for its country")]
    Invalid(String),
}

/// A phone number that libphonenumber judged valid, kept in E.164 (`+442079460958`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// International numbers (`+44…`) stand on their own; national ones are read in
    /// `default_region`.
    pub fn parse(input: &str, default_region: Region) -> Result<Self, PhoneNumberError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(PhoneNumberError::Missing);
        }
        // The parser accepts a few hundred characters at most in practice; anything longer
        // is not a phone number and is not worth parsing.
        if trimmed.len() > 64 {
            return Err(PhoneNumberError::Unparseable(
                trimmed.chars().take(64).collect(),
            ));
        }
        let number = phonenumber::parse(Some(default_region), trimmed)
            .map_err(|_| PhoneNumberError::Unparseable(trimmed.to_owned()))?;
        if !phonenumber::is_valid(&number) {
            return Err(PhoneNumberError::Invalid(trimmed.to_owned()));
        }
        Ok(Self(number.format().mode(Mode::E164).to_string()))
    }

    /// For values read back from the store, which only ever holds parsed numbers.
    pub fn from_stored(e164: String) -> Self {
        Self(e164)
    }

    /// The number for a log line: its country code and last three digits, the rest
    /// hidden (`+44*******958`). Logs are read more widely than the data they describe.
    pub fn masked(&self) -> String {
        let number = self.as_str();
        let keep_head = number.len().min(3);
        let keep_tail = number.len().saturating_sub(keep_head).min(3);
        let hidden = number.len() - keep_head - keep_tail;
        format!(
            "{}{}{}",
            &number[..keep_head],
            "*".repeat(hidden),
            &number[number.len() - keep_tail..]
        )
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn international_numbers_normalise_to_e164() {
        let p = PhoneNumber::parse("+44 20 7946 0958", Region::US).expect("valid UK number");
        assert_eq!(p.as_str(), "+442079460958");
        let p = PhoneNumber::parse("+1 (415) 555-2671", Region::GB).expect("valid US number");
        assert_eq!(p.as_str(), "+14155552671");
    }

    #[test]
    fn a_masked_number_shows_its_country_code_and_last_digits_only() {
        let p = PhoneNumber::parse("+44 20 7946 0958", Region::US).expect("valid UK number");
        assert_eq!(p.masked(), "+44*******958");
        assert_eq!(p.masked().len(), p.as_str().len());
    }

    #[test]
    fn national_numbers_use_the_default_region() {
        let p = PhoneNumber::parse("020 7946 0958", Region::GB).expect("valid national number");
        assert_eq!(p.as_str(), "+442079460958");
        let p = PhoneNumber::parse("(415) 555-2671", Region::US).expect("valid national number");
        assert_eq!(p.as_str(), "+14155552671");
    }

    #[test]
    fn bad_numbers_are_refused() {
        assert_eq!(
            PhoneNumber::parse("  ", Region::US),
            Err(PhoneNumberError::Missing)
        );
        assert!(
            PhoneNumber::parse("+448675309", Region::US).is_err(),
            "too short for the UK"
        );
        assert!(PhoneNumber::parse("call me maybe", Region::US).is_err());
        assert!(PhoneNumber::parse("+1", Region::US).is_err());
        assert!(PhoneNumber::parse(&"9".repeat(500), Region::US).is_err());
    }
}
