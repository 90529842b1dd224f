//! Tolerant enums: every service enum here is "known variants + `Unrecognized(String)`".
//!
//! The Graph and ARM APIs add enum members over time and old doc examples use PascalCase, so
//! parsing is case-insensitive and never fails; an unknown value round-trips unchanged.

/// Declares an enum whose wire form is a string, parsed case-insensitively, with an
/// `Unrecognized(String)` variant that keeps whatever the service sent.
#[macro_export]
macro_rules! tolerant_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $wire:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)+
            /// A value this build does not know; kept verbatim.
            Unrecognized(String),
        }

        impl $name {
            /// The wire string (the service's own spelling for known values).
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $wire,)+
                    Self::Unrecognized(s) => s.as_str(),
                }
            }

            /// Parses case-insensitively; never fails.
            pub fn parse(s: &str) -> Self {
                $(if s.eq_ignore_ascii_case($wire) { return Self::$variant; })+
                Self::Unrecognized(s.to_string())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Ok(Self::parse(&s))
            }
        }
    };
}

#[cfg(test)]
mod tests {
    tolerant_enum!(Colour { Red => "red", DeepBlue => "deepBlue" });

    #[test]
    fn parses_known_values_in_any_case() {
        assert_eq!(Colour::parse("RED"), Colour::Red);
        assert_eq!(Colour::parse("DeepBlue"), Colour::DeepBlue);
        assert_eq!(Colour::parse("deepblue"), Colour::DeepBlue);
    }

    #[test]
    fn unknown_values_round_trip_verbatim() {
        let c: Colour = serde_json::from_str("\"ultraViolet\"").unwrap();
        assert_eq!(c, Colour::Unrecognized("ultraViolet".into()));
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"ultraViolet\"");
    }

    #[test]
    fn known_values_serialize_in_service_spelling() {
        let c: Colour = serde_json::from_str("\"DEEPBLUE\"").unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"deepBlue\"");
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics_and_round_trips(s in ".*") {
            let c = Colour::parse(&s);
            proptest::prop_assert!(c.as_str().eq_ignore_ascii_case(&s));
        }
    }
}
