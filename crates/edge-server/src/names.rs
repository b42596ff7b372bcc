//! Names and free texts of the contract: parse, don't validate.

use crate::error::ApiError;

/// True when `s` matches `^[A-Za-z0-9_]{2,50}$`.
pub fn valid_name(s: &str) -> bool {
    (2..=50).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// A name of an organization, user, role, app, deployment or subscription.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Name(String);

impl Name {
    /// Parses `s` as a name, reporting `field` on failure.
    pub fn parse(field: &str, s: &str) -> Result<Name, ApiError> {
        if valid_name(s) {
            Ok(Name(s.to_string()))
        } else {
            Err(ApiError::invalid(field, format!("{field} must match ^[A-Za-z0-9_]{{2,50}}$")))
        }
    }
    /// A name read back from the database, where only valid names are ever written.
    pub fn trusted(s: &str) -> Name {
        Name(s.to_string())
    }
    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a free text of `min..=max` characters (labels 1..200, person names 1..100).
pub fn text(field: &str, s: &str, min: usize, max: usize) -> Result<String, ApiError> {
    let n = s.chars().count();
    if n < min || n > max || s.chars().any(|c| c.is_control()) {
        return Err(ApiError::invalid(
            field,
            format!("{field} must be {min}..{max} characters without control characters"),
        ));
    }
    Ok(s.to_string())
}

/// A syntactically valid e-mail address (one `@`, a dotted domain, no spaces), ≤ 254 chars.
pub fn email(field: &str, s: &str) -> Result<String, ApiError> {
    let ok = s.len() <= 254
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && match s.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !domain.contains("..")
                    && domain.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            }
            None => false,
        };
    if ok {
        Ok(s.to_string())
    } else {
        Err(ApiError::invalid(field, format!("{field} is not a valid e-mail address")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn names() {
        assert!(valid_name("ab"));
        assert!(valid_name("My_Game_2"));
        assert!(!valid_name("a"));
        assert!(!valid_name("a-b"));
        assert!(!valid_name(&"x".repeat(51)));
        assert!(!valid_name("'; DROP TABLE orgs;--"));
    }
    #[test]
    fn emails() {
        assert!(email("e", "a@b.io").is_ok());
        assert!(email("e", "a@b").is_err());
        assert!(email("e", "a b@c.de").is_err());
        assert!(email("e", "@c.de").is_err());
    }
}
