//! Kafka's JAAS configuration text, as `sasl.jaas.config` holds it:
//!
//! ```text
//! org.apache.kafka.common.security.plain.PlainLoginModule required
//!     username="admin" password="admin-secret" user_alice="alice-secret";
//! ```
//!
//! A login module class, a control flag, `key=value` options (values quoted or bare; `\`
//! escapes inside quotes), and a `;`. No Rust crate reads this Java format, so this small
//! parser is written by hand; only one module entry is taken, as Kafka does for this
//! property. Clients read their `username` and `password` from it; brokers also their
//! PLAIN users.

use std::collections::BTreeMap;

/// One login module entry.
#[derive(Clone, PartialEq, Eq)]
pub struct JaasEntry {
    /// The login module class name.
    pub module: String,
    /// `required`, `requisite`, `sufficient` or `optional`.
    pub flag: String,
    /// The options, by name.
    pub options: BTreeMap<String, String>,
}

impl std::fmt::Debug for JaasEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Options hold passwords: only their names are shown.
        f.debug_struct("JaasEntry")
            .field("module", &self.module)
            .field("options", &self.options.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl JaasEntry {
    /// The users a PLAIN server accepts: options `user_<name>="<password>"`.
    pub fn plain_users(&self) -> BTreeMap<String, String> {
        self.options
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("user_")?.to_string(), v.clone())))
            .collect()
    }
}

/// Parses one entry; the error says what is wrong, never an option's value.
pub fn parse(text: &str) -> Result<JaasEntry, String> {
    let mut chars = text.trim().chars().peekable();
    let word = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut w = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '=' && *c != ';') {
            w.push(c);
        }
        w
    };
    let module = word(&mut chars);
    if module.is_empty() {
        return Err("no login module class".into());
    }
    let flag = word(&mut chars);
    if !["required", "requisite", "sufficient", "optional"].contains(&flag.as_str()) {
        return Err(format!(
            "the login module's flag must be required, requisite, sufficient or optional, not '{flag}'"
        ));
    }
    let mut options = BTreeMap::new();
    loop {
        let key = word(&mut chars);
        if key.is_empty() {
            break;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!("option '{key}' has no '='"));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let value = if chars.next_if_eq(&'"').is_some() {
            let mut v = String::new();
            loop {
                match chars.next() {
                    None => return Err(format!("the value of '{key}' has no closing quote")),
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => v.push(c),
                        None => return Err(format!("the value of '{key}' ends in '\\'")),
                    },
                    Some(c) => v.push(c),
                }
            }
            v
        } else {
            word(&mut chars)
        };
        options.insert(key, value);
    }
    while chars.next_if(|c| c.is_whitespace()).is_some() {}
    if chars.next() != Some(';') {
        return Err("the entry must end with ';'".into());
    }
    if chars.any(|c| !c.is_whitespace()) {
        return Err("only one login module entry is allowed".into());
    }
    Ok(JaasEntry {
        module,
        flag,
        options,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafkas_plain_example_parses() {
        let e = parse(
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required
               username="admin"
               password="admin-secret"
               user_admin="admin-secret"
               user_alice = "al\"ice;=" ;"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            e.module,
            "org.apache.kafka.common.security.plain.PlainLoginModule"
        );
        assert_eq!(e.options["username"], "admin");
        let users = e.plain_users();
        assert_eq!(users.len(), 2);
        assert_eq!(users["alice"], "al\"ice;=");
        assert!(!format!("{e:?}").contains("secret"), "Debug hides values");
    }

    #[test]
    fn bare_values_and_errors() {
        let e = parse("M optional debug=true;").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.options["debug"], "true");
        for (bad, why) in [
            ("", "no login module"),
            ("M mandatory a=1;", "flag"),
            ("M required a;", "no '='"),
            ("M required a=\"x;", "closing quote"),
            ("M required a=1", "end with ';'"),
            ("M required a=1; N required b=2;", "only one"),
        ] {
            let err = parse(bad).err().unwrap_or_default();
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert!(!parse("M required password=\"hunter2\"")
            .err()
            .unwrap_or_default()
            .contains("hunter2"));
    }
}
