//! Parse, don't validate: each value type takes what is valid and refuses the rest, through
//! `parse` and through serde alike.

use delivery_core::*;

#[test]
fn partner_order_numbers() {
    for valid in ["PN-0001", "1Z999AA10123456784", "dhl/2026/42", "a.b_c"] {
        assert_eq!(PartnerOrderNumber::parse(valid).unwrap().as_str(), valid);
    }
    for invalid in ["", " ", " PN-1", "PN 1", "PN-1\n", "PN#1", &"9".repeat(65)] {
        let error = PartnerOrderNumber::parse(invalid).unwrap_err();
        assert_eq!(error.what, "partner order number", "{invalid:?}");
        assert!(serde_json::from_value::<PartnerOrderNumber>(invalid.into()).is_err());
    }
}

#[test]
fn texts_and_ids() {
    for valid in ["the parcel was wet", "two lines:\r\nwet\tand torn", "é ✓"] {
        assert_eq!(Text::parse(valid).unwrap().as_str(), valid);
    }
    for invalid in [
        "  ",
        "\n\t",
        &"x".repeat(2001),
        "a\u{0}b",
        "bell\u{7}",
        "del\u{7f}",
    ] {
        assert_eq!(
            Text::parse(invalid).unwrap_err().what,
            "text",
            "{invalid:?}"
        );
        assert!(serde_json::from_value::<Text>(invalid.into()).is_err());
    }
    assert!(OperatorId::parse("op-7").is_ok());
    assert!(OperatorId::parse("op\u{7}").is_err());
    assert!(CountryCode::parse("GB").is_ok());
    for invalid in ["gb", "GBR", "G", "1A"] {
        assert!(CountryCode::parse(invalid).is_err(), "{invalid}");
    }
}

#[test]
fn only_physical_lines_are_delivered() {
    let line = |format| OrderLine {
        product_id: "p-1".parse().unwrap(),
        title: "Emma".parse().unwrap(),
        format,
        quantity: 2.try_into().unwrap(),
    };
    let lines =
        PhysicalLines::from_ordering([line(Format::Ebook), line(Format::Physical)]).unwrap();
    assert_eq!(lines.as_slice().len(), 1);
    assert_eq!(
        PhysicalLines::from_ordering([line(Format::Ebook)]),
        Err(NothingToDeliver)
    );
    assert!(serde_json::from_value::<PhysicalLines>(serde_json::json!([])).is_err());
    assert!(Quantity::try_from(0).is_err());
}

#[test]
fn enums_parse_their_graph_names() {
    for reason in FailureReason::ALL {
        assert_eq!(reason.name().parse::<FailureReason>().unwrap(), reason);
    }
    assert_eq!(
        "SLA_EXCEEDED".parse::<FailureReason>().unwrap(),
        FailureReason::SlaExceeded
    );
    assert!("sla_exceeded".parse::<FailureReason>().is_err());
    assert_eq!(
        FailureReason::from(DisputeReason::PackageDamaged),
        FailureReason::PackageDamaged
    );
    assert_eq!(
        "1.2.3".parse::<GraphVersion>().unwrap().to_string(),
        "1.2.3"
    );
    for invalid in ["1.2", "1.2.3.4", "a.b.c", ""] {
        assert!(invalid.parse::<GraphVersion>().is_err(), "{invalid}");
    }
}
