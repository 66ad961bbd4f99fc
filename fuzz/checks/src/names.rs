//! Entity names, namespaces, fully qualified names and the web action URL path.

use whisk_core::api::web::WebPath;
use whisk_core::entity::name::{validate_namespace, MAX_NAME_LENGTH};
use whisk_core::entity::{EntityName, FullyQualifiedEntityName, NameError};

/// The namespace `_` stands for in the fuzzed paths.
const OWN: &str = "guest";

/// Name and path parsing on the input as UTF-8.
///
/// Names: a valid name is at most 256 characters, has no `/`, is also a valid namespace and
/// survives JSON; a refusal tells the real length. Fully qualified names: every segment of
/// a parsed name is a valid name, and its absolute and document-id forms parse back to it.
/// Web action paths (`/api/v1/web/{ns}/{pkg}/{action}...`): the parts are valid names and
/// name the same action as the fully qualified form.
pub fn entity_names(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let len = text.chars().count();
    match EntityName::new(text) {
        Ok(name) => {
            assert_eq!(name.as_str(), text);
            assert!(len <= MAX_NAME_LENGTH && !text.contains('/'), "{text:?}");
            assert_eq!(validate_namespace(text), Ok(()), "{text:?}");
            let json = serde_json::to_string(&name).expect("a name serialises");
            assert_eq!(serde_json::from_str::<EntityName>(&json).ok(), Some(name));
        }
        Err(NameError::TooLong(n)) => assert!(n == len && n > MAX_NAME_LENGTH, "{text:?}"),
        Err(NameError::IllegalCharacters) => assert!(len <= MAX_NAME_LENGTH, "{text:?}"),
        Err(e) => panic!("a name refused as a namespace: {e}"),
    }
    match validate_namespace(text) {
        Ok(()) => assert!(EntityName::new(text).is_ok(), "{text:?}"),
        Err(NameError::NamespaceTooLong(n)) => assert!(n == len && n > MAX_NAME_LENGTH),
        Err(NameError::IllegalNamespace) => {
            assert_eq!(EntityName::new(text), Err(NameError::IllegalCharacters))
        }
        Err(e) => panic!("a namespace refused as a name: {e}"),
    }
    if let Ok(fqn) = FullyQualifiedEntityName::parse(text, OWN) {
        fully_qualified(&fqn);
    }
    for path in [text.to_string(), format!("/api/v1/web/{text}")] {
        if let Some(web) = WebPath::parse(&path) {
            web_path(&web);
        }
    }
}

/// The invariants of a parsed fully qualified name.
fn fully_qualified(fqn: &FullyQualifiedEntityName) {
    let segments: Vec<&str> = fqn.path.split('/').collect();
    assert!((1..=2).contains(&segments.len()), "{fqn:?}");
    for s in segments.iter().chain([&fqn.name.as_str()]) {
        assert!(EntityName::new(s).is_ok(), "{fqn:?}");
    }
    assert_eq!(fqn.root_namespace(), segments[0]);
    assert_eq!(fqn.to_string(), fqn.doc_id());
    for form in [fqn.absolute(), fqn.doc_id()] {
        assert_eq!(
            FullyQualifiedEntityName::parse(&form, OWN).as_ref(),
            Ok(fqn),
            "{form:?}"
        );
    }
    assert_eq!(&crate::reparsed(fqn), fqn);
}

/// The invariants of a parsed web action path.
fn web_path(web: &WebPath) {
    assert_eq!(validate_namespace(&web.ns), Ok(()), "{web:?}");
    if let Some(pkg) = &web.pkg {
        assert!(pkg != "default" && EntityName::new(pkg).is_ok(), "{web:?}");
    }
    assert!(EntityName::new(&web.name).is_ok(), "{web:?}");
    assert!(web.rest.is_empty() || web.rest.starts_with('/'), "{web:?}");
    let absolute = format!("/{}/{}", web.action_path(), web.name);
    let fqn = FullyQualifiedEntityName::parse(&absolute, OWN)
        .unwrap_or_else(|e| panic!("web path {web:?} as {absolute:?}: {e}"));
    let ns = if web.ns == "_" { OWN } else { web.ns.as_str() };
    let path = match &web.pkg {
        Some(pkg) => format!("{ns}/{pkg}"),
        None => ns.to_string(),
    };
    assert_eq!(
        (fqn.path.as_str(), fqn.name.as_str()),
        (path.as_str(), web.name.as_str())
    );
}
