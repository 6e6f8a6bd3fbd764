//! The transforms that change a record's topic, as Kafka's TimestampRouter
//! (`topic.format` with `${topic}` and `${timestamp}`, `timestamp.format` a Java
//! `SimpleDateFormat` pattern, in UTC) and RegexRouter (`regex` that must match the whole
//! topic, as Java's `Matcher.matches()`, and `replacement` with Java's `$1` / `${name}`
//! group references). Also the UTC calendar arithmetic Cast's date strings use.

use regex::Regex;

use super::{Part, Settings, Transformation};
use crate::record::Record;
use crate::ConnectError;

// ---------------------------------------------------------------------------------------
// Dates

/// A UTC instant broken into calendar fields (proleptic Gregorian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// The year.
    pub year: i64,
    /// The month, 1 to 12.
    pub month: u32,
    /// The day of the month, 1 to 31.
    pub day: u32,
    /// The hour, 0 to 23.
    pub hour: u32,
    /// The minute.
    pub minute: u32,
    /// The second.
    pub second: u32,
    /// The millisecond.
    pub milli: u32,
    /// The day of the year, 1 to 366.
    pub day_of_year: u32,
    /// The ISO day of the week, 1 (Monday) to 7 (Sunday).
    pub weekday: u32,
}

/// Days since 1970-01-01 of a civil date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

impl Civil {
    /// The calendar fields of `millis` since the epoch, in UTC.
    pub fn from_millis(millis: i64) -> Civil {
        let days = millis.div_euclid(86_400_000);
        let in_day = millis.rem_euclid(86_400_000);
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil {
            year,
            month,
            day,
            hour: (in_day / 3_600_000) as u32,
            minute: (in_day / 60_000 % 60) as u32,
            second: (in_day / 1000 % 60) as u32,
            milli: (in_day % 1000) as u32,
            day_of_year: (days - days_from_civil(year, 1, 1) + 1) as u32,
            weekday: ((days + 3).rem_euclid(7) + 1) as u32,
        }
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Literal(String),
    Field(char, usize),
}

/// A Java `SimpleDateFormat` pattern (`yyyyMMdd`, `yyyy-MM-dd'T'HH:mm:ss.SSSZ`),
/// formatting in UTC with the English names of months and days. Letters: G y M L d D E
/// u F a H k K h m s S z Z X, quoted text in `'...'` and `''` for a quote.
#[derive(Debug, Clone)]
pub struct DateFormat {
    tokens: Vec<Token>,
}

impl DateFormat {
    /// The pattern parsed, or Java's error for it.
    pub fn parse(pattern: &str) -> Result<DateFormat, String> {
        let mut tokens: Vec<Token> = Vec::new();
        let mut literal = String::new();
        let chars: Vec<char> = pattern.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                if chars.get(i + 1) == Some(&'\'') {
                    literal.push('\'');
                    i += 2;
                    continue;
                }
                // Quoted text up to the closing quote ('' inside is a quote).
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("Unterminated quote".into()),
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            literal.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(&q) => {
                            literal.push(q);
                            i += 1;
                        }
                    }
                }
                continue;
            }
            if c.is_ascii_alphabetic() {
                if !"GyMLdDEuFaHkKhmsSzZX".contains(c) {
                    return Err(if "YwW".contains(c) {
                        format!("Pattern letter '{c}' (week dates) is not supported by Strom")
                    } else {
                        format!("Illegal pattern character '{c}'")
                    });
                }
                let mut n = 1;
                while chars.get(i + n) == Some(&c) {
                    n += 1;
                }
                if !literal.is_empty() {
                    tokens.push(Token::Literal(std::mem::take(&mut literal)));
                }
                tokens.push(Token::Field(c, n));
                i += n;
                continue;
            }
            literal.push(c);
            i += 1;
        }
        if !literal.is_empty() {
            tokens.push(Token::Literal(literal));
        }
        Ok(DateFormat { tokens })
    }

    /// `millis` since the epoch, formatted in UTC.
    pub fn format(&self, millis: i64) -> String {
        let c = Civil::from_millis(millis);
        let mut out = String::new();
        let num = |out: &mut String, v: i64, width: usize| {
            out.push_str(&format!("{v:0width$}"));
        };
        for t in &self.tokens {
            match t {
                Token::Literal(s) => out.push_str(s),
                Token::Field(letter, n) => {
                    let n = *n;
                    match letter {
                        'G' => out.push_str(if c.year > 0 { "AD" } else { "BC" }),
                        'y' if n == 2 => num(&mut out, c.year.rem_euclid(100), 2),
                        'y' => num(&mut out, c.year, n),
                        'M' | 'L' if n >= 4 => out.push_str(MONTHS[c.month as usize - 1]),
                        'M' | 'L' if n == 3 => out.push_str(&MONTHS[c.month as usize - 1][..3]),
                        'M' | 'L' => num(&mut out, c.month.into(), n),
                        'd' => num(&mut out, c.day.into(), n),
                        'D' => num(&mut out, c.day_of_year.into(), n),
                        'E' if n >= 4 => out.push_str(DAYS[c.weekday as usize - 1]),
                        'E' => out.push_str(&DAYS[c.weekday as usize - 1][..3]),
                        'u' => num(&mut out, c.weekday.into(), n),
                        'F' => num(&mut out, ((c.day - 1) / 7 + 1).into(), n),
                        'a' => out.push_str(if c.hour < 12 { "AM" } else { "PM" }),
                        'H' => num(&mut out, c.hour.into(), n),
                        'k' => num(&mut out, if c.hour == 0 { 24 } else { c.hour.into() }, n),
                        'K' => num(&mut out, (c.hour % 12).into(), n),
                        'h' => num(
                            &mut out,
                            if c.hour.is_multiple_of(12) {
                                12
                            } else {
                                (c.hour % 12).into()
                            },
                            n,
                        ),
                        'm' => num(&mut out, c.minute.into(), n),
                        's' => num(&mut out, c.second.into(), n),
                        'S' => num(&mut out, c.milli.into(), n),
                        'z' if n >= 4 => out.push_str("Coordinated Universal Time"),
                        'z' => out.push_str("UTC"),
                        'Z' => out.push_str("+0000"),
                        _ => out.push('Z'), // 'X': ISO 8601 zone, "Z" for UTC
                    }
                }
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// TimestampRouter

/// `TimestampRouter`: the topic becomes `topic.format` (default `${topic}-${timestamp}`)
/// with the record's timestamp formatted by `timestamp.format` (default `yyyyMMdd`).
pub struct TimestampRouter {
    topic_format: String,
    timestamp_format: DateFormat,
}

/// Builds TimestampRouter from its settings.
pub fn build_timestamp_router(s: &mut Settings, _part: Part) -> Option<Box<dyn Transformation>> {
    let topic_format = s.string_or("topic.format", "${topic}-${timestamp}");
    let pattern = s.string_or("timestamp.format", "yyyyMMdd");
    match DateFormat::parse(&pattern) {
        Ok(timestamp_format) => Some(Box::new(TimestampRouter {
            topic_format,
            timestamp_format,
        })),
        Err(why) => {
            s.invalid("timestamp.format", &pattern, &why);
            None
        }
    }
}

impl Transformation for TimestampRouter {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, ConnectError> {
        let Some(ts) = record.timestamp else {
            return Err(ConnectError::Data(format!(
                "Timestamp missing on record: ConnectRecord{{topic='{}', kafkaPartition={}, timestamp=null}}",
                record.topic,
                record
                    .partition
                    .map_or_else(|| "null".to_string(), |p| p.to_string())
            )));
        };
        let stamp = self.timestamp_format.format(ts);
        record.topic = self
            .topic_format
            .replace("${topic}", &record.topic)
            .replace("${timestamp}", &stamp);
        Ok(Some(record))
    }
}

// ---------------------------------------------------------------------------------------
// RegexRouter

/// One piece of a Java replacement string.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Group(usize),
    Named(String),
}

/// A Java `Matcher.replaceFirst` replacement parsed against `re`'s groups: `$n` (as many
/// digits as still name a group), `${name}`, and `\` quoting the next character.
fn parse_replacement(replacement: &str, re: &Regex) -> Result<Vec<Piece>, String> {
    let groups = re.captures_len() - 1;
    let mut pieces = Vec::new();
    let mut text = String::new();
    let chars: Vec<char> = replacement.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                let c = chars
                    .get(i + 1)
                    .ok_or("character to be escaped is missing")?;
                text.push(*c);
                i += 2;
            }
            '$' => {
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                i += 1;
                match chars.get(i) {
                    None => return Err("Illegal group reference: group index is missing".into()),
                    Some('{') => {
                        let close = chars[i..]
                            .iter()
                            .position(|&c| c == '}')
                            .ok_or("named capturing group is missing trailing '}'")?;
                        let name: String = chars[i + 1..i + close].iter().collect();
                        let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
                            && name.chars().all(|c| c.is_ascii_alphanumeric());
                        if !valid {
                            return Err(format!(
                                "named capturing group has 0 length name or invalid name: {name}"
                            ));
                        }
                        if !re.capture_names().any(|n| n == Some(name.as_str())) {
                            return Err(format!("No group with name {{{name}}}"));
                        }
                        pieces.push(Piece::Named(name));
                        i += close + 1;
                    }
                    Some(c) if c.is_ascii_digit() => {
                        let mut n = c.to_digit(10).unwrap_or(0) as usize;
                        i += 1;
                        while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
                            let next = n * 10 + d as usize;
                            if next > groups {
                                break;
                            }
                            n = next;
                            i += 1;
                        }
                        if n > groups {
                            return Err(format!("No group {n}"));
                        }
                        pieces.push(Piece::Group(n));
                    }
                    Some(_) => return Err("Illegal group reference".into()),
                }
            }
            c => {
                text.push(c);
                i += 1;
            }
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// `RegexRouter`: when `regex` matches the whole topic, the topic becomes `replacement`
/// with the groups filled in; other topics are left alone.
pub struct RegexRouter {
    regex: Regex,
    replacement: Vec<Piece>,
}

/// A Java regex compiled to match whole strings (as `Matcher.matches()`), or Kafka's
/// error message.
pub fn whole_match_regex(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| format!("Invalid regex: {e}"))?;
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| format!("Invalid regex: {e}"))
}

/// Builds RegexRouter from its settings.
pub fn build_regex_router(s: &mut Settings, _part: Part) -> Option<Box<dyn Transformation>> {
    let pattern = s.required_string("regex");
    let replacement = s.required_string("replacement");
    let regex = match whole_match_regex(pattern.as_deref()?) {
        Ok(r) => r,
        Err(why) => {
            s.invalid("regex", pattern.as_deref().unwrap_or_default(), &why);
            return None;
        }
    };
    let replacement = replacement?;
    match parse_replacement(&replacement, &regex) {
        Ok(pieces) => Some(Box::new(RegexRouter {
            regex,
            replacement: pieces,
        })),
        Err(why) => {
            s.invalid("replacement", &replacement, &why);
            None
        }
    }
}

impl Transformation for RegexRouter {
    fn apply(&self, mut record: Record) -> Result<Option<Record>, ConnectError> {
        if let Some(caps) = self.regex.captures(&record.topic) {
            let mut topic = String::new();
            for p in &self.replacement {
                match p {
                    Piece::Text(t) => topic.push_str(t),
                    Piece::Group(n) => topic.push_str(caps.get(*n).map_or("", |m| m.as_str())),
                    Piece::Named(n) => topic.push_str(caps.name(n).map_or("", |m| m.as_str())),
                }
            }
            record.topic = topic;
        }
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{errors_of, one, run};
    use super::*;

    fn at(topic: &str, ts: Option<i64>) -> Record {
        let mut r = Record::new(topic);
        r.timestamp = ts;
        r
    }

    #[test]
    fn calendar_fields_are_utc() {
        let c = Civil::from_millis(1_709_251_199_999); // 2024-02-29T23:59:59.999Z
        assert_eq!((c.year, c.month, c.day), (2024, 2, 29));
        assert_eq!((c.hour, c.minute, c.second, c.milli), (23, 59, 59, 999));
        assert_eq!((c.day_of_year, c.weekday), (60, 4));
        let before = Civil::from_millis(-1);
        assert_eq!(
            (before.year, before.month, before.day, before.hour),
            (1969, 12, 31, 23)
        );
        assert_eq!(Civil::from_millis(0).weekday, 4); // a Thursday
    }

    #[test]
    fn simple_date_format_patterns() {
        let ms = 1_709_251_199_999;
        let f = |p: &str| DateFormat::parse(p).unwrap().format(ms);
        assert_eq!(f("yyyyMMdd"), "20240229");
        assert_eq!(
            f("yyyy-MM-dd'T'HH:mm:ss.SSSZ"),
            "2024-02-29T23:59:59.999+0000"
        );
        assert_eq!(f("yy.M.d h:mm a"), "24.2.29 11:59 PM");
        assert_eq!(f("EEE, d MMM yyyy"), "Thu, 29 Feb 2024");
        assert_eq!(f("EEEE MMMM DDD"), "Thursday February 060");
        assert_eq!(f("'week''s' yyyy''"), "week's 2024'");
        assert_eq!(
            DateFormat::parse("yyyyq").unwrap_err(),
            "Illegal pattern character 'q'"
        );
        assert_eq!(
            DateFormat::parse("'open").unwrap_err(),
            "Unterminated quote"
        );
    }

    #[test]
    fn timestamp_router_formats_the_topic() {
        let chain = one("TimestampRouter", &[]);
        assert_eq!(run(&chain, at("logs", Some(0))).topic, "logs-19700101");
        let chain = one(
            "org.apache.kafka.connect.transforms.TimestampRouter",
            &[
                ("topic.format", "${timestamp}_${topic}"),
                ("timestamp.format", "yyyy-MM"),
            ],
        );
        assert_eq!(
            run(&chain, at("logs", Some(1_709_251_199_999))).topic,
            "2024-02_logs"
        );
        let e = chain.apply(at("logs", None)).unwrap_err();
        assert!(
            e.to_string().starts_with("Timestamp missing on record: "),
            "{e}"
        );
        assert_eq!(
            errors_of("TimestampRouter", &[("timestamp.format", "yyyyMMdd-q")])[0].1,
            "Invalid value yyyyMMdd-q for configuration transforms.t.timestamp.format: Illegal pattern character 'q'"
        );
    }

    #[test]
    fn regex_router_needs_a_whole_match_and_takes_java_groups() {
        let chain = one(
            "RegexRouter",
            &[
                ("regex", "(.*)-(?<env>prod|test)"),
                ("replacement", "$2.${env}.$1\\$"),
            ],
        );
        assert_eq!(
            run(&chain, at("orders-prod", None)).topic,
            "prod.prod.orders$"
        );
        // A partial match leaves the topic alone.
        assert_eq!(
            run(&chain, at("orders-prod-2", None)).topic,
            "orders-prod-2"
        );
        // `$10` with fewer than ten groups is group 1 then "0".
        let chain = one("RegexRouter", &[("regex", "a(b)"), ("replacement", "x$10")]);
        assert_eq!(run(&chain, at("ab", None)).topic, "xb0");
        let alt = one(
            "RegexRouter",
            &[("regex", "a|ab"), ("replacement", "matched")],
        );
        assert_eq!(run(&alt, at("ab", None)).topic, "matched");
    }

    #[test]
    fn regex_router_refuses_bad_settings() {
        let e = errors_of(
            "RegexRouter",
            &[("regex", "(unclosed"), ("replacement", "x")],
        );
        assert_eq!(e[0].0, "transforms.t.regex");
        assert!(e[0].1.starts_with(
            "Invalid value (unclosed for configuration transforms.t.regex: Invalid regex: "
        ));
        let e = errors_of("RegexRouter", &[("regex", "(a)"), ("replacement", "$2")]);
        assert_eq!(
            e,
            vec![(
                "transforms.t.replacement".into(),
                "Invalid value $2 for configuration transforms.t.replacement: No group 2".into()
            )]
        );
        let e = errors_of("RegexRouter", &[]);
        let names: Vec<_> = e.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            vec!["transforms.t.regex", "transforms.t.replacement"]
        );
    }
}
