use std::fmt;

use phonenumber::Mode;
use phonenumber::country::Id as Region;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneNumberError {
    #[error("{field} is missing")]
    Missing { field: &'static str },
    #[error("{field} `{input}` cannot be parsed as a phone number{}", read_as(.national_in))]
    Unparseable {
        field: &'static str,
        input: String,
        /// The region a national number was read in (`None`: given in international form).
        national_in: Option<String>,
    },
    #[error("{field} `{input}` is not a valid number for its country{}", read_as(.national_in))]
    Invalid {
        field: &'static str,
        input: String,
        national_in: Option<String>,
    },
}

/// The region of an ISO 3166 two-letter code (`GB`, `us`).
pub fn region(code: &str) -> Option<Region> {
    (code.len() == 2)
        .then(|| code.to_ascii_uppercase().parse().ok())
        .flatten()
}

/// For a national number, which region it was read in, and how to say another.
fn read_as(national_in: &Option<String>) -> String {
    national_in.as_ref().map_or_else(String::new, |region| {
        format!(
            " (read as a national number of region {region}; give another country's number in international form, +<country code>…)"
        )
    })
}

/// A phone number that libphonenumber judged valid, kept in E.164 (`+442079460958`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// International numbers (`+44…`) stand on their own; national ones are read in
    /// `default_region`.
    pub fn parse(input: &str, default_region: Region) -> Result<Self, PhoneNumberError> {
        Self::parse_field("phoneNumber", input, default_region)
    }

    /// As [`parse`](Self::parse), with errors naming `field`.
    pub fn parse_field(
        field: &'static str,
        input: &str,
        default_region: Region,
    ) -> Result<Self, PhoneNumberError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(PhoneNumberError::Missing { field });
        }
        // The parser accepts a few hundred characters at most in practice; anything longer
        // is not a phone number and is not worth parsing.
        if trimmed.len() > 64 {
            return Err(PhoneNumberError::Unparseable {
                field,
                input: trimmed.chars().take(64).collect(),
                national_in: None,
            });
        }
        let international = trimmed.starts_with('+');
        let national_in = (!international).then(|| default_region.as_ref().to_owned());
        // `+44 (0) 20 7946 0958`: the national trunk prefix in parentheses, as UK and many
        // European numbers are printed, is not dialled from abroad: drop it.
        let written = if international {
            drop_trunk_prefix(trimmed)
        } else {
            trimmed.to_owned()
        };
        let number = phonenumber::parse(Some(default_region), &written).map_err(|_| {
            PhoneNumberError::Unparseable {
                field,
                input: trimmed.to_owned(),
                national_in: national_in.clone(),
            }
        })?;
        if !phonenumber::is_valid(&number) {
            return Err(PhoneNumberError::Invalid {
                field,
                input: trimmed.to_owned(),
                national_in,
            });
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

/// An international number without a `(0)` — spaces allowed inside the parentheses — that
/// follows its country code.
fn drop_trunk_prefix(number: &str) -> String {
    let compact: String = number.chars().filter(|c| !c.is_whitespace()).collect();
    match compact.find("(0)") {
        // Only right after the country code (1 to 3 digits after the `+`).
        Some(at) => {
            let code = &compact[1..at];
            if (1..=3).contains(&code.len()) && code.chars().all(|c| c.is_ascii_digit()) {
                // The rest as digits only: `+44 (0)20-7946-0958` leaves `20-7946…`, whose
                // separators the parser would no longer read as a national number's.
                let rest: String = compact[at + 3..]
                    .chars()
                    .filter(char::is_ascii_digit)
                    .collect();
                format!("{}{rest}", &compact[..at])
            } else {
                number.to_owned()
            }
        }
        None => number.to_owned(),
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
    fn the_trunk_prefix_in_parentheses_is_read_as_people_write_it() {
        for written in [
            "+44 (0) 20 7946 0958",
            "+44(0)20 7946 0958",
            "+44 ( 0 ) 2079460958",
        ] {
            let p = PhoneNumber::parse(written, Region::US).expect(written);
            assert_eq!(p.as_str(), "+442079460958", "{written}");
        }
        // Only right after a country code of 1 to 3 digits: anywhere else it is left as
        // written, for libphonenumber to judge.
        assert_eq!(
            drop_trunk_prefix("+44 20 7946 (0)958"),
            "+44 20 7946 (0)958"
        );
        assert_eq!(drop_trunk_prefix("+1234(0)5678"), "+1234(0)5678");
        assert_eq!(drop_trunk_prefix("+44 (0) 20"), "+4420");
    }

    #[test]
    fn a_refused_national_number_names_the_region_it_was_read_in() {
        let e = PhoneNumber::parse("020 7946 095", Region::US).expect_err("not a US number");
        let message = e.to_string();
        assert!(
            message.contains("national number of region US"),
            "{message}"
        );
        let e = PhoneNumber::parse("+1 415 555", Region::GB).expect_err("too short");
        assert!(!e.to_string().contains("region"), "{e}");
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
            Err(PhoneNumberError::Missing {
                field: "phoneNumber"
            })
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
