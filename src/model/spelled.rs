//! Names said once: an enum whose every variant has one spelling, written once beside the
//! variant and used both as its serde name and as its `as_str`, so the JSON, the text, the
//! metrics and the files cannot spell a rule id, a lab outcome or a gap kind two ways.

/// Declares a fieldless enum with one string per variant (`Variant = "spelling",`). The
/// string is the variant's `#[serde(rename)]` and what `as_str` returns; `ALL` lists every
/// variant in declaration order. The enum derives `Serialize` and `Deserialize`; other
/// derives and attributes go above it as usual.
macro_rules! spelled {
    (
        $(#[$attr:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vattr:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$attr])*
        #[derive(serde::Serialize, serde::Deserialize)]
        $vis enum $name {
            $( $(#[$vattr])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            $vis const ALL: &'static [$name] = &[$($name::$variant),+];

            /// Its name, as serialised.
            $vis const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }
    };
}
pub(crate) use spelled;

/// Checks that every variant of `all` serialises as its `as_str`, reads back from it, and
/// that no two variants share a name.
#[cfg(test)]
pub(crate) fn assert_spelled_once<T>(all: &[T], as_str: fn(T) -> &'static str)
where
    T: serde::Serialize + serde::de::DeserializeOwned + Copy + PartialEq + std::fmt::Debug,
{
    let mut seen = std::collections::BTreeSet::new();
    for &v in all {
        let name = as_str(v);
        assert!(seen.insert(name), "{name} names two variants");
        let json = serde_json::to_value(v).expect("a fieldless enum serialises");
        assert_eq!(json, serde_json::Value::from(name), "{v:?}");
        let back: T = serde_json::from_value(json).expect("and reads back");
        assert_eq!(back, v, "{name}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    spelled! {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        enum Toy {
            /// A doc comment and another attribute pass through.
            #[default]
            One = "one",
            TwoWords = "two-words",
        }
    }

    #[test]
    fn the_spelling_is_the_serde_name_and_as_str() {
        assert_eq!(Toy::ALL, [Toy::One, Toy::TwoWords]);
        assert_eq!(Toy::TwoWords.as_str(), "two-words");
        assert_eq!(Toy::default(), Toy::One);
        assert_spelled_once(Toy::ALL, Toy::as_str);
    }
}
