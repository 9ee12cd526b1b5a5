//! Values that can only hold what is valid: parse, don't validate.
//!
//! Each type is made by parsing (`FromStr`, `TryFrom<String>`, serde goes through the same
//! parser), so a value in hand is a valid one and no code downstream checks it again.
//! Text-like values share their storage (`Arc<str>`): moving one into the next state or
//! into an event costs no allocation.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Why a value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: {why}")]
pub struct InvalidValue {
    /// The kind of value, e.g. `partner order number`.
    pub what: &'static str,
    /// What is wrong with it.
    pub why: String,
}

impl InvalidValue {
    fn new(what: &'static str, why: impl Into<String>) -> Self {
        Self {
            what,
            why: why.into(),
        }
    }
}

/// Declares a text newtype over `Arc<str>` whose only constructor is `check`.
macro_rules! text_value {
    ($(#[$doc:meta])* $name:ident, $what:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Arc<str>);

        impl $name {
            /// Parses `raw`, refusing anything invalid.
            pub fn parse(raw: &str) -> Result<Self, InvalidValue> {
                let check: fn(&str) -> Result<(), String> = $check;
                check(raw).map_err(|why| InvalidValue::new($what, why))?;
                Ok(Self(Arc::from(raw)))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = InvalidValue;
            fn from_str(raw: &str) -> Result<Self, InvalidValue> {
                Self::parse(raw)
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(raw: String) -> Result<Self, InvalidValue> {
                Self::parse(&raw)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0.to_string()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }
    };
}

/// A non-blank single-line identifier of at most `max` characters.
fn identifier(raw: &str, max: usize) -> Result<(), String> {
    if raw.trim().is_empty() {
        return Err("must not be blank".into());
    }
    if raw.trim() != raw {
        return Err("must not start or end with white space".into());
    }
    if raw.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if raw.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

text_value!(
    /// The delivery partner's own number for a delivery order: 1 to 64 ASCII letters,
    /// digits, `-`, `_`, `.` or `/`.
    PartnerOrderNumber,
    "partner order number",
    |raw| {
        identifier(raw, 64)?;
        match raw.chars().find(|c| !(c.is_ascii_alphanumeric() || "-_./".contains(*c))) {
            Some(c) => Err(format!("{c:?} is not allowed (letters, digits, - _ . / only)")),
            None => Ok(()),
        }
    }
);
text_value!(
    /// An operator's identifier.
    OperatorId,
    "operator id",
    |raw| identifier(raw, 128)
);
text_value!(
    /// Who acted, as the authentication said (a subject, a partner id, `system`, ...).
    ActorId,
    "actor id",
    |raw| identifier(raw, 128)
);
text_value!(
    /// The ordering domain's id of an ordering.
    OrderingId,
    "ordering id",
    |raw| identifier(raw, 128)
);
text_value!(
    /// The customer domain's id of a customer.
    CustomerId,
    "customer id",
    |raw| identifier(raw, 128)
);
text_value!(
    /// The payment domain's id of a payment.
    PaymentId,
    "payment id",
    |raw| identifier(raw, 128)
);
text_value!(
    /// The product domain's id of a product.
    ProductId,
    "product id",
    |raw| identifier(raw, 128)
);
text_value!(
    /// Free text written by a person (a failure detail, an operator's note): not blank, at
    /// most 2,000 characters, lines and tabs allowed but no other control character (a
    /// NUL, say, which PostgreSQL cannot store).
    Text,
    "text",
    |raw| {
        if raw.trim().is_empty() {
            Err("must not be blank".into())
        } else if raw.chars().count() > 2000 {
            Err("must be at most 2000 characters".into())
        } else if let Some(c) = raw
            .chars()
            .find(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            Err(format!(
                "must not contain the control character {c:?} (only line breaks and tabs)"
            ))
        } else {
            Ok(())
        }
    }
);
text_value!(
    /// A short single line of an address or a title: not blank, at most 200 characters.
    Line,
    "line",
    |raw| identifier(raw, 200)
);
text_value!(
    /// An ISO 3166-1 alpha-2 country code, e.g. `GB`.
    CountryCode,
    "country code",
    |raw| {
        if raw.len() == 2 && raw.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(())
        } else {
            Err("must be two upper-case letters (ISO 3166-1 alpha-2)".into())
        }
    }
);

/// Our id of a delivery order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeliveryId(pub uuid::Uuid);

impl fmt::Display for DeliveryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for DeliveryId {
    type Err = InvalidValue;
    fn from_str(raw: &str) -> Result<Self, InvalidValue> {
        uuid::Uuid::parse_str(raw)
            .map(DeliveryId)
            .map_err(|err| InvalidValue::new("delivery id", err.to_string()))
    }
}

/// Where the parcel goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShippingAddress {
    pub name: Line,
    pub line1: Line,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line2: Option<Line>,
    pub city: Line,
    pub postal_code: Line,
    pub country: CountryCode,
}

/// A product's format: only physical books are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Format {
    Physical,
    Ebook,
}

/// A line of an ordering as the payment event lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    pub product_id: ProductId,
    pub title: Line,
    pub format: Format,
    pub quantity: Quantity,
}

/// How many of a product: at least one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct Quantity(std::num::NonZeroU32);

impl Quantity {
    pub fn get(self) -> u32 {
        self.0.get()
    }
}

impl TryFrom<u32> for Quantity {
    type Error = InvalidValue;
    fn try_from(raw: u32) -> Result<Self, InvalidValue> {
        std::num::NonZeroU32::new(raw)
            .map(Quantity)
            .ok_or_else(|| InvalidValue::new("quantity", "must be at least 1"))
    }
}

impl From<Quantity> for u32 {
    fn from(quantity: Quantity) -> u32 {
        quantity.get()
    }
}

/// The physical lines of an ordering: never empty, never an e-book.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<OrderLine>", into = "Vec<OrderLine>")]
pub struct PhysicalLines(Vec<OrderLine>);

/// An ordering with nothing to deliver: it gets no delivery order. Not a failure of the
/// input, a fact about it, so callers can tell it from invalid data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the ordering has no physical lines: nothing to deliver")]
pub struct NothingToDeliver;

impl PhysicalLines {
    /// Keeps the physical lines of an ordering; `None` when there are none.
    pub fn from_ordering(
        lines: impl IntoIterator<Item = OrderLine>,
    ) -> Result<Self, NothingToDeliver> {
        let physical: Vec<_> = lines
            .into_iter()
            .filter(|line| line.format == Format::Physical)
            .collect();
        if physical.is_empty() {
            Err(NothingToDeliver)
        } else {
            Ok(Self(physical))
        }
    }

    pub fn as_slice(&self) -> &[OrderLine] {
        &self.0
    }
}

impl TryFrom<Vec<OrderLine>> for PhysicalLines {
    type Error = InvalidValue;
    fn try_from(lines: Vec<OrderLine>) -> Result<Self, InvalidValue> {
        if lines.iter().any(|line| line.format != Format::Physical) {
            return Err(InvalidValue::new(
                "physical lines",
                "an e-book is never delivered",
            ));
        }
        Self::from_ordering(lines)
            .map_err(|err| InvalidValue::new("physical lines", err.to_string()))
    }
}

impl From<PhysicalLines> for Vec<OrderLine> {
    fn from(lines: PhysicalLines) -> Self {
        lines.0
    }
}

/// The semantic version of the graph an event was made under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GraphVersion {
    pub major: u16,
    pub minor: u16,
    pub patch: u16,
}

impl fmt::Display for GraphVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl FromStr for GraphVersion {
    type Err = InvalidValue;
    fn from_str(raw: &str) -> Result<Self, InvalidValue> {
        let invalid =
            || InvalidValue::new("graph version", format!("{raw:?} is not MAJOR.MINOR.PATCH"));
        let mut parts = raw
            .split('.')
            .map(|part| part.parse::<u16>().map_err(|_| invalid()));
        let version = GraphVersion {
            major: parts.next().ok_or_else(invalid)??,
            minor: parts.next().ok_or_else(invalid)??,
            patch: parts.next().ok_or_else(invalid)??,
        };
        match parts.next() {
            None => Ok(version),
            Some(_) => Err(invalid()),
        }
    }
}

impl TryFrom<String> for GraphVersion {
    type Error = InvalidValue;
    fn try_from(raw: String) -> Result<Self, InvalidValue> {
        raw.parse()
    }
}

impl From<GraphVersion> for String {
    fn from(version: GraphVersion) -> String {
        version.to_string()
    }
}
