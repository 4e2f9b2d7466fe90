//! Property tests of the pure parts a request goes through first: the page-token codec and
//! input validation. Whatever the input, they answer (never panic), and what they accept meets
//! the documented rules.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use todo_service::domain::{
    PageSize, PageToken, RequestId, Timestamp, TodoDescription, TodoFilter, TodoId, TodoTitle,
    UserId,
};

fn user_id() -> impl Strategy<Value = UserId> {
    // Better Auth ids are 32 alphanumerics; any valid id must work, so allow all of Unicode.
    prop_oneof!["[A-Za-z0-9]{32}", "\\PC{1,64}"]
        .prop_filter_map("a valid user id", |raw: String| UserId::parse(raw).ok())
}

fn filter() -> impl Strategy<Value = TodoFilter> {
    prop_oneof![Just(None), Just(Some(false)), Just(Some(true))]
        .prop_map(|completed| TodoFilter { completed })
}

/// A token with the owner and filter it was issued for.
fn token() -> impl Strategy<Value = (UserId, TodoFilter, PageToken)> {
    (user_id(), filter(), any::<i64>(), any::<u128>()).prop_map(|(owner, filter, time, id)| {
        let id = uuid::Uuid::from_u128(id).hyphenated().to_string();
        let id = TodoId::parse(&id, "id").expect("a canonical UUID parses");
        let token = PageToken::new(owner.clone(), filter, Timestamp::from_micros(time), id);
        (owner, filter, token)
    })
}

/// Strings that look like tokens more often than arbitrary text does: base64url of JSON-ish
/// or random bytes, and real tokens with one character changed.
fn token_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[A-Za-z0-9_-]{0,120}",
        proptest::collection::vec(any::<u8>(), 0..120).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
        (
            any::<u8>(),
            "\\PC{0,20}",
            proptest::option::of(any::<bool>()),
            any::<i64>(),
            "\\PC{0,40}"
        )
            .prop_map(|(v, u, c, t, i)| {
                let json = serde_json::json!({"v": v, "u": u, "c": c, "t": t, "i": i});
                URL_SAFE_NO_PAD.encode(json.to_string())
            }),
        (token(), any::<usize>(), any::<char>()).prop_map(|((_, _, token), at, c)| {
            let mut chars: Vec<char> = token.encode().chars().collect();
            let at = at % chars.len();
            chars[at] = c;
            chars.into_iter().collect()
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_token_decodes_to_itself_for_its_owner_and_filter((owner, filter, token) in token()) {
        let encoded = token.encode();
        prop_assert!(encoded.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        prop_assert_eq!(PageToken::parse(&encoded, &owner, filter), Ok(Some(token)));
    }

    #[test]
    fn a_token_decodes_only_for_its_own_user_and_filter(
        (owner, filter, token) in token(),
        other_user in user_id(),
        other_filter in filter(),
        same_user in any::<bool>(),
    ) {
        let encoded = token.encode();
        // Half the time the right user, so the filter alone also has to decide.
        let other_user = if same_user { owner.clone() } else { other_user };
        let decoded = PageToken::parse(&encoded, &other_user, other_filter);
        if other_user == owner && other_filter == filter {
            prop_assert!(decoded.is_ok());
        } else {
            let invalid = decoded.expect_err("someone else's token or another filter");
            prop_assert_eq!(invalid.field, "page_token");
        }
    }

    #[test]
    fn decoding_never_panics_and_rejects_with_the_page_token_field(
        raw in token_like(),
        user in user_id(),
        filter in filter(),
    ) {
        match PageToken::parse(&raw, &user, filter) {
            Ok(None) => prop_assert!(raw.is_empty()),
            // Anything accepted must say the same thing when encoded again.
            Ok(Some(token)) => {
                prop_assert_eq!(PageToken::parse(&token.encode(), &user, filter), Ok(Some(token)));
            }
            Err(invalid) => prop_assert_eq!(invalid.field, "page_token"),
        }
    }

    #[test]
    fn titles_are_accepted_trimmed_short_and_printable_or_rejected_as_title(raw in any::<String>()) {
        check_title(&raw)?;
    }

    #[test]
    fn titles_near_the_limits_follow_the_rules(
        pad_left in "\\s{0,3}",
        body in "\\PC{0,210}",
        pad_right in "\\s{0,3}",
    ) {
        check_title(&format!("{pad_left}{body}{pad_right}"))?;
    }

    #[test]
    fn descriptions_are_kept_verbatim_or_rejected_as_description(
        raw in prop_oneof![any::<String>(), "[\\PC\\n\\r\\t]{1990,2010}"],
    ) {
        match TodoDescription::parse(&raw) {
            Ok(description) => {
                prop_assert_eq!(description.as_str(), raw.as_str());
                prop_assert!(raw.chars().count() <= TodoDescription::MAX_CHARS);
                prop_assert!(!raw.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t')));
            }
            Err(invalid) => {
                prop_assert_eq!(invalid.field, "description");
                let too_long = raw.chars().count() > TodoDescription::MAX_CHARS;
                let control = raw.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'));
                prop_assert!(too_long || control, "rejected for no reason: {:?}", invalid);
            }
        }
    }

    #[test]
    fn request_ids_are_kept_verbatim_or_rejected_as_request_id(raw in any::<String>()) {
        match RequestId::parse(&raw) {
            Ok(None) => prop_assert!(raw.is_empty()),
            Ok(Some(id)) => {
                prop_assert_eq!(id.as_str(), raw.as_str());
                prop_assert!(raw.chars().count() <= 128 && !raw.chars().any(char::is_control));
            }
            Err(invalid) => prop_assert_eq!(invalid.field, "request_id"),
        }
    }

    #[test]
    fn page_sizes_are_one_to_one_hundred_or_rejected_as_page_size(raw in any::<i32>()) {
        match PageSize::parse(raw) {
            Ok(size) => {
                prop_assert!(raw >= 0);
                prop_assert!((1..=PageSize::MAX).contains(&size.get()));
                let expected = match raw {
                    0 => PageSize::DEFAULT,
                    n => u16::try_from(n.min(i32::from(PageSize::MAX))).expect("capped"),
                };
                prop_assert_eq!(size.get(), expected);
            }
            Err(invalid) => {
                prop_assert!(raw < 0);
                prop_assert_eq!(invalid.field, "page_size");
            }
        }
    }

    #[test]
    fn todo_ids_parse_only_in_the_form_the_service_sends(raw in any::<u128>(), noise in any::<String>()) {
        let canonical = uuid::Uuid::from_u128(raw).hyphenated().to_string();
        prop_assert!(TodoId::parse(&canonical, "id").is_ok());
        for other in [
            canonical.to_uppercase(),
            uuid::Uuid::from_u128(raw).simple().to_string(),
            format!("{{{canonical}}}"),
            format!("{canonical}{noise}"),
        ] {
            if other != canonical {
                prop_assert_eq!(TodoId::parse(&other, "id").map_err(|e| e.field), Err("id"));
            }
        }
        if let Ok(id) = TodoId::parse(&noise, "id") {
            prop_assert_eq!(id.to_string(), noise);
        }
    }
}

fn check_title(raw: &str) -> Result<(), TestCaseError> {
    match TodoTitle::parse(raw) {
        Ok(title) => {
            let title = title.as_str();
            prop_assert_eq!(title, raw.trim());
            prop_assert_eq!(title, title.trim(), "trimmed");
            let chars = title.chars().count();
            prop_assert!(
                (1..=TodoTitle::MAX_CHARS).contains(&chars),
                "{} chars",
                chars
            );
            prop_assert!(
                !title.chars().any(char::is_control),
                "no control characters"
            );
        }
        Err(invalid) => {
            prop_assert_eq!(invalid.field, "title");
            let trimmed = raw.trim();
            let count = trimmed.chars().count();
            let broken =
                count == 0 || count > TodoTitle::MAX_CHARS || trimmed.chars().any(char::is_control);
            prop_assert!(broken, "{:?} rejected: {:?}", raw, invalid);
        }
    }
    Ok(())
}
