//! How domain values and JSON bodies cross the wire.
//!
//! [`Wire<T>`] carries a delivery-core value (a validated text value such as
//! `PartnerOrderNumber`, or an enum of graph.yaml such as `FailureReason`) as a JSON string
//! or a path/query parameter. Parsing goes through the domain's own parser, so a request
//! holding an invalid value never reaches a handler, and the OpenAPI schema is named after
//! the domain type, with the enum values graph.yaml defines: a value added there shows up
//! in the spec without an edit here.
//!
//! [`JsonBody<T>`] is a JSON body. As a request body, JSON that does not parse is 400
//! (malformed), JSON that does not fit the schema or holds an invalid value is 422 (invalid
//! input), both as problem+json. Requests and responses alike are declared as exactly
//! `application/json` (poem-openapi's `Json` declares responses with `; charset=utf-8`,
//! which some client generators do not recognise as JSON: their operations then return
//! nothing).

use std::borrow::Cow;

use delivery_core::{
    CountryCode, CustomerId, DeliveryId, DeliveryState, DisputeReason, FailureReason, Format,
    InvalidValue, Line, OperatorId, OrderingId, PartnerOrderNumber, PaymentId, ProductId,
    Resolution, Text, Transition,
};
use poem::{IntoResponse, Request, RequestBody, Response};
use poem_openapi::ApiResponse;
use poem_openapi::payload::{ParsePayload, Payload};
use poem_openapi::registry::{
    MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
};
use poem_openapi::types::{
    ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type,
};
use serde_json::Value;

use crate::error::ApiError;

/// A domain value on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wire<T>(pub T);

/// A domain type that travels as a string.
pub trait WireValue: Sized + Send + Sync + 'static {
    /// The schema's name in the OpenAPI spec.
    const SCHEMA: &'static str;
    const DESCRIPTION: &'static str;
    /// The OpenAPI `format` of the string, if it has one.
    const FORMAT: Option<&'static str> = None;
    /// What the parser accepts, as the schema's `minLength`, `maxLength` (in characters,
    /// as both JSON Schema and the parsers count) and `pattern`, so that a client or a
    /// fuzzer can tell a valid value from the spec alone.
    const TEXT_RULE: Option<TextRule> = None;
    /// The only values allowed, for enums; empty for free-form values.
    fn enum_values() -> Vec<&'static str> {
        Vec::new()
    }
    fn parse(raw: &str) -> Result<Self, InvalidValue>;
    fn to_wire(&self) -> String;
}

/// The string constraints of a text value, restating its delivery-core parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextRule {
    pub min_length: usize,
    pub max_length: usize,
    /// An ECMA-262 regex (JSON Schema's dialect, not anchored unless it says so), written
    /// with `\xNN`/`\uNNNN` escapes only, so Python's `re` (schemathesis) reads it alike.
    pub pattern: &'static str,
}

/// delivery-core's identifier rule: no control character (`char::is_control`, Unicode
/// Cc), and neither starts nor ends with white space (`char::is_whitespace`) or a control.
const IDENTIFIER_PATTERN: &str = concat!(
    r"^[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]",
    r"([^\x00-\x1F\x7F-\x9F]*",
    r"[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000])?$",
);

const fn identifier(max_length: usize) -> Option<TextRule> {
    Some(TextRule {
        min_length: 1,
        max_length,
        pattern: IDENTIFIER_PATTERN,
    })
}

/// Text values: parsed by their own `parse`.
macro_rules! text_values {
    ($($ty:ident: $description:literal, $rule:expr;)*) => {$(
        impl WireValue for $ty {
            const SCHEMA: &'static str = stringify!($ty);
            const DESCRIPTION: &'static str = $description;
            const TEXT_RULE: Option<TextRule> = $rule;
            fn parse(raw: &str) -> Result<Self, InvalidValue> {
                $ty::parse(raw)
            }
            fn to_wire(&self) -> String {
                self.as_str().to_owned()
            }
        }
    )*};
}

text_values! {
    PartnerOrderNumber: "The delivery partner's own number for a delivery order: 1 to 64 ASCII letters, digits, `-`, `_`, `.` or `/`.",
        Some(TextRule { min_length: 1, max_length: 64, pattern: r"^[-A-Za-z0-9_./]+$" });
    OperatorId: "An operator's identifier: not blank, at most 128 characters, one line.", identifier(128);
    OrderingId: "The ordering domain's id of an ordering: not blank, at most 128 characters, one line.", identifier(128);
    CustomerId: "The customer domain's id of a customer: not blank, at most 128 characters, one line.", identifier(128);
    PaymentId: "The payment domain's id of a payment: not blank, at most 128 characters, one line.", identifier(128);
    ProductId: "The product domain's id of a product: not blank, at most 128 characters, one line.", identifier(128);
    // Not blank (some character that is neither white space nor a control), and no
    // control character but tabs and line breaks.
    Text: "Free text written by a person: not blank, at most 2000 characters, no control characters but tabs and line breaks.",
        Some(TextRule { min_length: 1, max_length: 2000, pattern: concat!(
            r"^[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*",
            r"[^\x00-\x20\x7F-\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]",
            r"[^\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]*$",
        ) });
    Line: "A single line of an address or a title: not blank, at most 200 characters.", identifier(200);
    CountryCode: "An ISO 3166-1 alpha-2 country code, e.g. `GB`.",
        Some(TextRule { min_length: 2, max_length: 2, pattern: "^[A-Z]{2}$" });
}

/// graph.yaml's enums: their `ALL` values by `name()`.
macro_rules! graph_enums {
    ($($ty:ident: $description:literal;)*) => {$(
        impl WireValue for $ty {
            const SCHEMA: &'static str = stringify!($ty);
            const DESCRIPTION: &'static str = $description;
            fn enum_values() -> Vec<&'static str> {
                $ty::ALL.iter().map(|value| value.name()).collect()
            }
            fn parse(raw: &str) -> Result<Self, InvalidValue> {
                raw.parse()
            }
            fn to_wire(&self) -> String {
                self.name().to_owned()
            }
        }
    )*};
}

graph_enums! {
    DeliveryState: "A state of the delivery graph (graph.yaml).";
    Transition: "A transition of the delivery graph (graph.yaml).";
    FailureReason: "Why a delivery failed, drawn from the delivery partners' own failure codes.";
    DisputeReason: "What a customer may dispute about a delivery the partner reported delivered.";
    Resolution: "How an operator closes a failed delivery: REDELIVER makes a new delivery order.";
}

impl WireValue for DeliveryId {
    const SCHEMA: &'static str = "DeliveryId";
    const DESCRIPTION: &'static str = "Our id of a delivery order.";
    const FORMAT: Option<&'static str> = Some("uuid");
    fn parse(raw: &str) -> Result<Self, InvalidValue> {
        raw.parse()
    }
    fn to_wire(&self) -> String {
        self.to_string()
    }
}

impl WireValue for Format {
    const SCHEMA: &'static str = "Format";
    const DESCRIPTION: &'static str = "A product's format: only PHYSICAL lines are delivered.";
    fn enum_values() -> Vec<&'static str> {
        vec!["PHYSICAL", "EBOOK"]
    }
    fn parse(raw: &str) -> Result<Self, InvalidValue> {
        match raw {
            "PHYSICAL" => Ok(Format::Physical),
            "EBOOK" => Ok(Format::Ebook),
            _ => Err(InvalidValue {
                what: "format",
                why: format!("{raw:?} is not one of PHYSICAL, EBOOK"),
            }),
        }
    }
    fn to_wire(&self) -> String {
        match self {
            Format::Physical => "PHYSICAL",
            Format::Ebook => "EBOOK",
        }
        .to_owned()
    }
}

impl<T: WireValue> Type for Wire<T> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        T::SCHEMA.into()
    }

    /// A reference to the named schema. A struct field of this type must not have a doc
    /// comment: poem-openapi would turn the reference into `allOf: [$ref, {description}]`,
    /// which generators such as openapi-python-client refuse for a non-object schema (the
    /// spec test `no_allof_over_a_non_object` holds this). Describe the field in the
    /// struct's doc comment instead.
    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Reference(T::SCHEMA.into())
    }

    fn register(registry: &mut Registry) {
        registry.create_schema::<Self, _>(T::SCHEMA.into(), |_| MetaSchema {
            description: Some(T::DESCRIPTION),
            format: T::FORMAT,
            enum_items: T::enum_values().into_iter().map(Value::from).collect(),
            min_length: T::TEXT_RULE.map(|rule| rule.min_length),
            max_length: T::TEXT_RULE.map(|rule| rule.max_length),
            pattern: T::TEXT_RULE.map(|rule| rule.pattern.to_owned()),
            ..MetaSchema::new("string")
        });
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl<T: WireValue> ParseFromJSON for Wire<T> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            Value::String(raw) => Self::parse_from_parameter(&raw),
            other => Err(ParseError::expected_type(other)),
        }
    }
}

impl<T: WireValue> ParseFromParameter for Wire<T> {
    fn parse_from_parameter(raw: &str) -> ParseResult<Self> {
        T::parse(raw).map(Wire).map_err(ParseError::custom)
    }
}

impl<T: WireValue> ToJSON for Wire<T> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.to_wire()))
    }
}

/// Reads an optional field of a request body (`#[oai(deserialize_with = "not_null")]`):
/// it may be left out but not be `null`, as the spec says (no field is nullable).
/// `Option`'s own reading takes `null` for "left out", accepting what the spec refuses.
pub fn not_null<T: ParseFromJSON>(value: Option<Value>) -> ParseResult<Option<T>> {
    match value {
        Some(Value::Null) => Err(ParseError::custom(
            "null is not a value here: leave the field out",
        )),
        value => Option::<T>::parse_from_json(value).map_err(ParseError::propagate),
    }
}

/// A JSON body: a request's, parsed into `T`, or a response's, written from `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: Type> Payload for JsonBody<T> {
    const CONTENT_TYPE: &'static str = "application/json";

    fn check_content_type(content_type: &str) -> bool {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        essence.eq_ignore_ascii_case("application/json")
            || (essence.starts_with("application/") && essence.ends_with("+json"))
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: ParseFromJSON> ParsePayload for JsonBody<T> {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> poem::Result<Self> {
        let bytes = <Vec<u8> as poem::FromRequest>::from_request(request, body).await?;
        Ok(JsonBody(parse_json(&bytes)?))
    }
}

/// A JSON body parsed into `T`: not JSON is malformed (400), not `T` is invalid (422).
pub(crate) fn parse_json<T: ParseFromJSON>(bytes: &[u8]) -> Result<T, ApiError> {
    let json: Value = serde_json::from_slice(bytes)
        .map_err(|err| ApiError::Malformed(format!("the body is not valid JSON: {err}")))?;
    T::parse_from_json(Some(json)).map_err(|err| ApiError::Invalid(err.into_message()))
}

poem_openapi::impl_apirequest_for_payload!(JsonBody<T>, T: ParseFromJSON);

impl<T: ToJSON> IntoResponse for JsonBody<T> {
    fn into_response(self) -> Response {
        let json = self.0.to_json().unwrap_or_default();
        Response::builder()
            .content_type(<Self as Payload>::CONTENT_TYPE)
            .body(json.to_string())
    }
}

/// A 200 with this body, for operations that answer only that (besides problems).
impl<T: ToJSON> ApiResponse for JsonBody<T> {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "",
                status: Some(200),
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: <Self as Payload>::CONTENT_TYPE,
                    schema: <Self as Payload>::schema_ref(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

#[cfg(test)]
mod tests {
    use regex::Regex;

    use super::*;

    /// Strings at the edges of the text values' rules: white space and controls of every
    /// kind, at either end and inside, and lengths at and past each maximum.
    fn samples() -> Vec<String> {
        let mut samples: Vec<String> = [
            "",
            " ",
            "a",
            " a",
            "a ",
            "a b",
            "a\nb",
            "a\r\nb",
            "a\tb",
            "\n\t",
            "\ta",
            "a\u{0}b",
            "bell\u{7}",
            "a\u{b}b",
            "a\u{c}b",
            "del\u{7f}",
            "\u{e3}\u{9a}y",
            "\u{85}",
            "x\u{a0}",
            "\u{a0}x",
            "\u{2028}a",
            "a\u{3000}",
            "\u{3000}",
            "é ✓",
            "DX-1",
            "dx/2026/42",
            "DX#1",
            "GB",
            "gb",
            "GBR",
            "ord-1",
            "\u{1f4e6} parcel",
        ]
        .map(String::from)
        .into();
        for length in [2, 64, 65, 128, 129, 200, 201, 2000, 2001] {
            samples.push("x".repeat(length));
        }
        samples
    }

    /// What the spec says of a value (JSON Schema: lengths in code points, the pattern
    /// searched for, not anchored) against what its parser takes.
    fn the_schema_says_what_the_parser_takes<T: WireValue>() {
        let rule = T::TEXT_RULE.expect("a text rule");
        let pattern = Regex::new(rule.pattern).expect("the pattern compiles");
        for sample in samples() {
            let length = sample.chars().count();
            let by_schema =
                (rule.min_length..=rule.max_length).contains(&length) && pattern.is_match(&sample);
            assert_eq!(
                by_schema,
                T::parse(&sample).is_ok(),
                "{}: {sample:?}",
                T::SCHEMA
            );
        }
    }

    #[test]
    fn every_text_values_schema_says_what_its_parser_takes() {
        the_schema_says_what_the_parser_takes::<PartnerOrderNumber>();
        the_schema_says_what_the_parser_takes::<OperatorId>();
        the_schema_says_what_the_parser_takes::<OrderingId>();
        the_schema_says_what_the_parser_takes::<CustomerId>();
        the_schema_says_what_the_parser_takes::<PaymentId>();
        the_schema_says_what_the_parser_takes::<ProductId>();
        the_schema_says_what_the_parser_takes::<Text>();
        the_schema_says_what_the_parser_takes::<Line>();
        the_schema_says_what_the_parser_takes::<CountryCode>();
    }
}
