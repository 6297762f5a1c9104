//! Serde helpers for `f64` values that may be infinite or NaN (JSON has no
//! literal for them): finite values are written as numbers, the others as
//! the strings `"inf"`, `"-inf"` and `"nan"`. Used by [`ReduceLrOnPlateau`]
//! and the early-stopping state.
//!
//! [`ReduceLrOnPlateau`]: super::ReduceLrOnPlateau

use serde::{Deserialize, Deserializer, Serializer};

#[derive(Deserialize)]
#[serde(untagged)]
enum Repr {
    Num(f64),
    Str(String),
}

fn parse<E: serde::de::Error>(r: Repr) -> Result<f64, E> {
    match r {
        Repr::Num(v) => Ok(v),
        Repr::Str(s) => match s.as_str() {
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            "nan" => Ok(f64::NAN),
            other => Err(E::custom(format!(
                "expected a number, \"inf\", \"-inf\" or \"nan\", got \"{other}\""
            ))),
        },
    }
}

/// Serializes an `f64`, writing non-finite values as strings.
pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_finite() {
        s.serialize_f64(*v)
    } else if v.is_nan() {
        s.serialize_str("nan")
    } else if *v > 0.0 {
        s.serialize_str("inf")
    } else {
        s.serialize_str("-inf")
    }
}

/// Deserializes what [`serialize`] wrote.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    parse(Repr::deserialize(d)?)
}

/// The same for `Option<f64>`.
pub mod option {
    use super::*;

    /// Serializes an `Option<f64>`, writing non-finite values as strings.
    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            None => s.serialize_none(),
            Some(x) => {
                struct W(f64);
                impl serde::Serialize for W {
                    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                        super::serialize(&self.0, s)
                    }
                }
                s.serialize_some(&W(*x))
            }
        }
    }

    /// Deserializes what [`serialize`] wrote.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        match Option::<Repr>::deserialize(d)? {
            None => Ok(None),
            Some(r) => parse(r).map(Some),
        }
    }
}
