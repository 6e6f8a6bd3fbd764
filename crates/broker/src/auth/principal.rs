//! The principal of a TLS client: the subject of its certificate as an RFC 2253
//! distinguished name (`CN=alice,OU=eng,O=acme`, what Java's `X500Principal.getName()`
//! gives Kafka), turned into a user name by `ssl.principal.mapping.rules`:
//!
//! ```text
//! RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?),O=.*$/$1@$2/L,DEFAULT
//! ```
//!
//! Rules are tried in order; a rule applies when its pattern matches the whole name, and its
//! replacement (with `$1`... groups, and `/L` or `/U` for lower or upper case) is the name.
//! `DEFAULT` keeps the distinguished name as it is. When no rule applies the client is
//! refused, as in Kafka.

use regex::Regex;
use x509_parser::prelude::{FromDer, X509Certificate};

/// `ssl.principal.mapping.rules`, parsed.
#[derive(Debug, Clone)]
pub struct MappingRules(Vec<Rule>);

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Pattern {
        pattern: Regex,
        replacement: String,
        case: Option<char>,
    },
}

impl Default for MappingRules {
    fn default() -> Self {
        MappingRules(vec![Rule::Default])
    }
}

/// Reads up to an unescaped `/`; the text (with `\/` unescaped) and what follows it.
fn until_slash(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, '/')) => out.push('/'),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => return None,
            },
            '/' => return Some((out, &s[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

impl MappingRules {
    /// Parses the property's value.
    pub fn parse(text: &str) -> Result<MappingRules, String> {
        let mut rules = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                rules.push(Rule::Default);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) =
                    until_slash(after).ok_or("a RULE needs RULE:pattern/replacement/")?;
                let (replacement, after) =
                    until_slash(after).ok_or("a RULE needs RULE:pattern/replacement/")?;
                let (case, after) = match after.chars().next() {
                    Some(c @ ('L' | 'U')) => (Some(c), &after[1..]),
                    _ => (None, after),
                };
                let pattern = Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| format!("pattern {pattern}: {e}"))?;
                rules.push(Rule::Pattern {
                    pattern,
                    replacement: java_groups(&replacement),
                    case,
                });
                rest = after;
            } else {
                return Err(format!("expected DEFAULT or RULE: at '{rest}'"));
            }
            rest = rest.trim_start();
            match rest.strip_prefix(',') {
                Some(after) => rest = after.trim_start(),
                None if rest.is_empty() => {}
                None => return Err(format!("expected ',' between rules at '{rest}'")),
            }
        }
        if rules.is_empty() {
            rules.push(Rule::Default);
        }
        Ok(MappingRules(rules))
    }

    /// The user name for distinguished name `dn`, or `None` when no rule applies.
    pub fn apply(&self, dn: &str) -> Option<String> {
        self.0.iter().find_map(|rule| match rule {
            Rule::Default => Some(dn.to_string()),
            Rule::Pattern {
                pattern,
                replacement,
                case,
            } => {
                let caps = pattern.captures(dn)?;
                let mut name = String::new();
                caps.expand(replacement, &mut name);
                Some(match case {
                    Some('L') => name.to_lowercase(),
                    Some('U') => name.to_uppercase(),
                    _ => name,
                })
            }
        })
    }
}

/// Java's `$1abc` is group 1 then `abc`; the regex crate would read a group named `1abc`.
fn java_groups(replacement: &str) -> String {
    let mut out = String::new();
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push_str("${");
            while let Some(d) = chars.next_if(char::is_ascii_digit) {
                out.push(d);
            }
            out.push('}');
        } else {
            out.push(c);
        }
    }
    out
}

/// The subject of a DER certificate as an RFC 2253 name: the relative names in reverse
/// order, joined by `,`, with RFC 2253's escapes.
pub fn subject_dn(der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let registry = x509_parser::objects::oid_registry();
    let rdns: Vec<String> = cert
        .subject()
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|attr| {
                    let kind = x509_parser::objects::oid2abbrev(attr.attr_type(), registry)
                        .map(str::to_string)
                        .unwrap_or_else(|_| attr.attr_type().to_id_string());
                    let value = attr
                        .as_str()
                        .map(escape)
                        .unwrap_or_else(|_| format!("#{}", hex(attr.as_slice())));
                    format!("{kind}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    Some(rdns.into_iter().rev().collect::<Vec<_>>().join(","))
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let edge =
            (i == 0 && (c == ' ' || c == '#')) || (i + 1 == value.chars().count() && c == ' ');
        if edge || matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafkas_documented_rules_map_names() {
        let rules = MappingRules::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,\n RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L, DEFAULT",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            rules
                .apply("CN=kafka-broker,OU=ServiceUsers,O=Unknown")
                .as_deref(),
            Some("kafka-broker")
        );
        assert_eq!(
            rules
                .apply("CN=Adam,OU=Eng,O=Acme,L=Town,ST=State,C=US")
                .as_deref(),
            Some("adam@eng")
        );
        assert_eq!(rules.apply("CN=other").as_deref(), Some("CN=other"));
        let upper =
            MappingRules::parse("RULE:^CN=([a-z]+)$/$1x/U").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(upper.apply("CN=bob").as_deref(), Some("BOBX"));
        assert_eq!(upper.apply("CN=Bob,O=x"), None, "no rule applies: refused");
        let slash = MappingRules::parse(r"RULE:^CN=(.*)\/x$/$1/").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(slash.apply("CN=a/x").as_deref(), Some("a"));
    }

    #[test]
    fn bad_rules_are_refused() {
        for bad in [
            "RULE:^CN=(.*)$",
            "RULE:(/x/",
            "SOMETHING",
            "DEFAULT DEFAULT",
        ] {
            assert!(MappingRules::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_certificates_subject_reads_as_rfc_2253() {
        let mut params = rcgen::CertificateParams::default();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "US");
        dn.push(rcgen::DnType::OrganizationName, "Acme, Inc");
        dn.push(rcgen::DnType::OrganizationalUnitName, "Eng");
        dn.push(rcgen::DnType::CommonName, "alice");
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
        let cert = params.self_signed(&key).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            subject_dn(cert.der()).as_deref(),
            Some(r"CN=alice,OU=Eng,O=Acme\, Inc,C=US")
        );
        assert_eq!(subject_dn(b"not a certificate"), None);
    }
}
