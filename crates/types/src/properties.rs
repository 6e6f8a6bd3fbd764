//! Java properties text, as Kafka's config files are written (`server.properties`,
//! `connect-standalone.properties`, a connector's file, a client's `--command-config`).

/// The `key=value` (or `key: value`) pairs of `text`, in order: `#` and `!` start a
/// comment line, and a line ending in `\` goes on with the next one (as long JAAS configs
/// are written). Keys and values are trimmed.
pub fn parse(text: &str) -> Vec<(String, String)> {
    let mut logical = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = if current.is_empty() {
            line.trim()
        } else {
            line.trim_start()
        };
        match line.strip_suffix('\\') {
            Some(head) if !line.starts_with('#') => current.push_str(head),
            _ => {
                current.push_str(line);
                logical.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.is_empty() {
        logical.push(current);
    }
    logical
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| {
            let i = l.find(['=', ':'])?;
            Some((l[..i].trim().to_string(), l[i + 1..].trim().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn comments_separators_and_continued_lines() {
        let text = "# a comment\n! another\nname = local-file-source\ntopic:connect-test\n\
                    jaas=one \\\n    two\nempty=\n";
        let pairs = parse(text);
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(pairs.len(), 4);
        assert_eq!(get("name"), Some("local-file-source"));
        assert_eq!(get("topic"), Some("connect-test"));
        assert_eq!(get("jaas"), Some("one two"));
        assert_eq!(get("empty"), Some(""));
    }
}
