//! OData `$filter` expressions, the subset MDE documents for its list routes: comparisons
//! (`eq ne gt ge lt le`) of a property with a literal, `and`, `or`, `not`, parentheses,
//! `startswith`/`endswith`/`contains`, and `any` over a string collection
//! (`machineTags/any(tag: tag eq 'x')`). Each route names the properties it filters on and
//! their types; anything else is refused with the position where it went wrong.

use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time};

/// The type of a filterable property.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    DateTime,
    Number,
    /// A collection of strings, filtered with `any`.
    Strings,
}

/// A property's value on one record. `None` is OData's `null`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    String(Option<&'a str>),
    DateTime(Option<OffsetDateTime>),
    Number(Option<i64>),
    Strings(&'a [String]),
}

/// What a filter reads of a record.
pub trait Record {
    fn value(&self, property: &str) -> Value<'_>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Null,
    String(String),
    DateTime(OffsetDateTime),
    Number(i64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    StartsWith,
    EndsWith,
    Contains,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Compare(&'static str, Op, Literal),
    Call(Func, &'static str, String),
    /// `property/any(x: x eq 'value')`.
    Any(&'static str, String),
}

/// A parsed `$filter`.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter(Expr);

impl Filter {
    /// Parses `text` over the route's `properties`; the error says what is wrong and where.
    pub fn parse(text: &str, properties: &[(&'static str, Kind)]) -> Result<Filter, String> {
        let mut p = Parser {
            tokens: tokenize(text)?,
            at: 0,
            properties,
        };
        let e = p.or()?;
        match p.tokens.get(p.at) {
            None => Ok(Filter(e)),
            Some(t) => Err(format!(
                "Syntax error at position {} in '{text}': unexpected '{}'.",
                t.pos, t.text
            )),
        }
    }

    pub fn matches(&self, record: &dyn Record) -> bool {
        eval(&self.0, record)
    }
}

/// Strings compare ignoring case, as host names and MDE's values do.
fn fold(s: &str) -> String {
    s.to_lowercase()
}

fn eval(e: &Expr, r: &dyn Record) -> bool {
    match e {
        Expr::And(a, b) => eval(a, r) && eval(b, r),
        Expr::Or(a, b) => eval(a, r) || eval(b, r),
        Expr::Not(a) => !eval(a, r),
        Expr::Compare(property, op, literal) => compare(r.value(property), *op, literal),
        Expr::Call(func, property, arg) => match r.value(property) {
            Value::String(Some(v)) => {
                let (v, arg) = (fold(v), fold(arg));
                match func {
                    Func::StartsWith => v.starts_with(&arg),
                    Func::EndsWith => v.ends_with(&arg),
                    Func::Contains => v.contains(&arg),
                }
            }
            _ => false,
        },
        Expr::Any(property, wanted) => match r.value(property) {
            Value::Strings(items) => items.iter().any(|i| fold(i) == fold(wanted)),
            _ => false,
        },
    }
}

/// OData's rules for `null`: it equals only `null`, and every ordering with it is false.
fn compare(value: Value<'_>, op: Op, literal: &Literal) -> bool {
    use std::cmp::Ordering;
    let ordering: Option<Ordering> = match (&value, literal) {
        (Value::String(None), Literal::Null)
        | (Value::DateTime(None), Literal::Null)
        | (Value::Number(None), Literal::Null) => Some(Ordering::Equal),
        (Value::String(Some(v)), Literal::String(l)) => Some(fold(v).cmp(&fold(l))),
        (Value::DateTime(Some(v)), Literal::DateTime(l)) => Some(v.cmp(l)),
        (Value::Number(Some(v)), Literal::Number(l)) => Some(v.cmp(l)),
        _ => None,
    };
    match (op, ordering) {
        (Op::Eq, o) => o == Some(Ordering::Equal),
        (Op::Ne, o) => o != Some(Ordering::Equal),
        (_, None) => false,
        (Op::Gt, Some(o)) => o == Ordering::Greater,
        (Op::Ge, Some(o)) => o != Ordering::Less,
        (Op::Lt, Some(o)) => o == Ordering::Less,
        (Op::Le, Some(o)) => o != Ordering::Greater,
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word,
    String(String),
    Open,
    Close,
    Comma,
    Colon,
    Slash,
}

#[derive(Debug, Clone)]
struct Token {
    kind: Tok,
    /// The token as written (for a string, with its quotes).
    text: String,
    /// Position of its first character, counted from 0 as OData does.
    pos: usize,
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let kind = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => Tok::Open,
            ')' => Tok::Close,
            ',' => Tok::Comma,
            ':' => Tok::Colon,
            '/' => Tok::Slash,
            '\'' => {
                let mut value = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(format!(
                                "Syntax error at position {start} in '{text}': the string \
                                 literal is not closed."
                            ))
                        }
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            value.push('\'');
                            i += 2;
                        }
                        Some('\'') => break,
                        Some(&c) => {
                            value.push(c);
                            i += 1;
                        }
                    }
                }
                i += 1;
                out.push(Token {
                    kind: Tok::String(value),
                    text: chars[start..i].iter().collect(),
                    pos: start,
                });
                continue;
            }
            c if c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '+') => {
                while chars
                    .get(i)
                    .is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '+'))
                    // A date-time's `:` (`2024-01-01T10:00:00Z`) belongs to the word.
                    || (chars.get(i) == Some(&':')
                        && chars[start..i].contains(&'T')
                        && chars[start].is_ascii_digit())
                {
                    i += 1;
                }
                out.push(Token {
                    kind: Tok::Word,
                    text: chars[start..i].iter().collect(),
                    pos: start,
                });
                continue;
            }
            other => {
                return Err(format!(
                    "Syntax error at position {start} in '{text}': unexpected '{other}'."
                ))
            }
        };
        i += 1;
        out.push(Token {
            kind,
            text: c.to_string(),
            pos: start,
        });
    }
    Ok(out)
}

struct Parser<'p> {
    tokens: Vec<Token>,
    at: usize,
    properties: &'p [(&'static str, Kind)],
}

impl Parser<'_> {
    fn peek_word(&self, word: &str) -> bool {
        self.tokens
            .get(self.at)
            .is_some_and(|t| t.kind == Tok::Word && t.text == word)
    }

    fn next(&mut self, what: &str) -> Result<Token, String> {
        let t =
            self.tokens.get(self.at).cloned().ok_or_else(|| {
                format!("Syntax error: the $filter ends where {what} was expected.")
            })?;
        self.at += 1;
        Ok(t)
    }

    fn expect(&mut self, kind: Tok, what: &str) -> Result<(), String> {
        let t = self.next(what)?;
        if t.kind == kind {
            Ok(())
        } else {
            Err(format!(
                "Syntax error at position {}: {what} was expected, not '{}'.",
                t.pos, t.text
            ))
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut e = self.and()?;
        while self.peek_word("or") {
            self.at += 1;
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut e = self.unary()?;
        while self.peek_word("and") {
            self.at += 1;
            e = Expr::And(Box::new(e), Box::new(self.unary()?));
        }
        Ok(e)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.peek_word("not") {
            self.at += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn property(&self, t: &Token) -> Result<(&'static str, Kind), String> {
        self.properties
            .iter()
            .find(|(name, _)| *name == t.text)
            .copied()
            .ok_or_else(|| {
                format!(
                    "The property '{}' cannot be used in the $filter query option.",
                    t.text
                )
            })
    }

    fn primary(&mut self) -> Result<Expr, String> {
        let t = self.next("a property")?;
        match &t.kind {
            Tok::Open => {
                let e = self.or()?;
                self.expect(Tok::Close, "')'")?;
                return Ok(e);
            }
            Tok::Word => {}
            _ => {
                return Err(format!(
                    "Syntax error at position {}: a property was expected, not '{}'.",
                    t.pos, t.text
                ))
            }
        }
        let func = match t.text.as_str() {
            "startswith" => Some(Func::StartsWith),
            "endswith" => Some(Func::EndsWith),
            "contains" => Some(Func::Contains),
            _ => None,
        };
        if let Some(func) = func {
            self.expect(Tok::Open, "'('")?;
            let p = self.next("a property")?;
            let (name, kind) = self.property(&p)?;
            if kind != Kind::String {
                return Err(format!(
                    "The function '{}' takes a string property; '{name}' is not one.",
                    t.text
                ));
            }
            self.expect(Tok::Comma, "','")?;
            let arg = match self.next("a string")? {
                Token {
                    kind: Tok::String(s),
                    ..
                } => s,
                other => {
                    return Err(format!(
                        "Syntax error at position {}: a string was expected, not '{}'.",
                        other.pos, other.text
                    ))
                }
            };
            self.expect(Tok::Close, "')'")?;
            return Ok(Expr::Call(func, name, arg));
        }
        let (name, kind) = self.property(&t)?;
        if kind == Kind::Strings {
            // property/any(x: x eq 'value')
            self.expect(Tok::Slash, "'/any('")?;
            let any = self.next("'any'")?;
            if any.text != "any" {
                return Err(format!(
                    "Syntax error at position {}: only 'any' is supported on '{name}'.",
                    any.pos
                ));
            }
            self.expect(Tok::Open, "'('")?;
            let var = self.next("a variable")?;
            self.expect(Tok::Colon, "':'")?;
            let again = self.next("the variable")?;
            let eq = self.next("'eq'")?;
            if var.kind != Tok::Word || again.text != var.text || eq.text != "eq" {
                return Err(format!(
                    "Syntax error at position {}: expected '{name}/any(x: x eq 'value')'.",
                    var.pos
                ));
            }
            let value = match self.next("a string")? {
                Token {
                    kind: Tok::String(s),
                    ..
                } => s,
                other => {
                    return Err(format!(
                        "Syntax error at position {}: a string was expected, not '{}'.",
                        other.pos, other.text
                    ))
                }
            };
            self.expect(Tok::Close, "')'")?;
            return Ok(Expr::Any(name, value));
        }
        let op_token = self.next("an operator")?;
        let op = match op_token.text.as_str() {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            other => {
                return Err(format!(
                    "Syntax error at position {}: an operator (eq, ne, gt, ge, lt, le) was \
                     expected, not '{other}'.",
                    op_token.pos
                ))
            }
        };
        let value = self.next("a value")?;
        let literal = literal(&value, name, kind)?;
        if literal == Literal::Null && !matches!(op, Op::Eq | Op::Ne) {
            return Err(format!(
                "Syntax error at position {}: null can only be compared with eq or ne.",
                value.pos
            ));
        }
        Ok(Expr::Compare(name, op, literal))
    }
}

/// A literal for a property of `kind`.
fn literal(t: &Token, name: &str, kind: Kind) -> Result<Literal, String> {
    if t.kind == Tok::Word && t.text == "null" {
        return Ok(Literal::Null);
    }
    let wrong = |expected: &str| {
        format!(
            "The value {} at position {} is not {expected}, as '{name}' needs.",
            t.text, t.pos
        )
    };
    match (kind, &t.kind) {
        (Kind::String, Tok::String(s)) => Ok(Literal::String(s.clone())),
        (Kind::String, _) => Err(wrong("a string in single quotes")),
        (Kind::Number, Tok::Word) => t
            .text
            .parse()
            .map(Literal::Number)
            .map_err(|_| wrong("a whole number")),
        (Kind::Number, _) => Err(wrong("a whole number")),
        (Kind::DateTime, Tok::Word) => date_time(&t.text)
            .map(Literal::DateTime)
            .ok_or_else(|| wrong("a date and time such as 2024-01-31Z or 2024-01-31T08:00:00Z")),
        (Kind::DateTime, _) => Err(wrong(
            "a date and time such as 2024-01-31Z or 2024-01-31T08:00:00Z",
        )),
        (Kind::Strings, _) => Err(wrong("usable here")),
    }
}

/// `2024-01-31T08:00:00Z` (RFC 3339) or a day, `2024-01-31Z` / `2024-01-31`, at midnight UTC.
fn date_time(s: &str) -> Option<OffsetDateTime> {
    if s.contains('T') {
        return OffsetDateTime::parse(s, &Rfc3339).ok();
    }
    let day = s.strip_suffix('Z').unwrap_or(s);
    let format = time::macros::format_description!("[year]-[month]-[day]");
    let date = Date::parse(day, &format).ok()?;
    Some(PrimitiveDateTime::new(date, Time::MIDNIGHT).assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct M {
        name: Option<&'static str>,
        seen: OffsetDateTime,
        build: Option<i64>,
        tags: Vec<String>,
    }

    impl Record for M {
        fn value(&self, property: &str) -> Value<'_> {
            match property {
                "computerDnsName" => Value::String(self.name),
                "lastSeen" => Value::DateTime(Some(self.seen)),
                "osBuild" => Value::Number(self.build),
                "machineTags" => Value::Strings(&self.tags),
                _ => Value::String(None),
            }
        }
    }

    const PROPS: &[(&str, Kind)] = &[
        ("computerDnsName", Kind::String),
        ("lastSeen", Kind::DateTime),
        ("osBuild", Kind::Number),
        ("machineTags", Kind::Strings),
        ("riskScore", Kind::String),
    ];

    fn m() -> M {
        M {
            name: Some("PC-01.contoso.com"),
            seen: date_time("2024-03-05T10:00:00Z").unwrap(),
            build: Some(19045),
            tags: vec!["Finance".into()],
        }
    }

    fn is(filter: &str) -> bool {
        Filter::parse(filter, PROPS)
            .unwrap_or_else(|e| panic!("{filter}: {e}"))
            .matches(&m())
    }

    fn refused(filter: &str) -> String {
        Filter::parse(filter, PROPS).unwrap_err()
    }

    #[test]
    fn comparisons_functions_and_logic() {
        assert!(is("computerDnsName eq 'pc-01.CONTOSO.com'"));
        assert!(!is("computerDnsName ne 'pc-01.contoso.com'"));
        assert!(is("startswith(computerDnsName,'pc-')"));
        assert!(is(
            "endswith(computerDnsName, '.com') and contains(computerDnsName,'toso')"
        ));
        assert!(is("lastSeen gt 2024-03-05Z"));
        assert!(is("lastSeen le 2024-03-05T10:00:00Z"));
        assert!(!is("lastSeen lt 2024-03-05T10:00:00+00:00"));
        assert!(is("osBuild ge 19045 and not (osBuild gt 19045)"));
        assert!(is("osBuild eq 1 or osBuild eq 19045"));
        assert!(is("machineTags/any(tag: tag eq 'finance')"));
        assert!(!is("machineTags/any(t: t eq 'hr')"));
        // null: equal only to null, never ordered.
        assert!(is("riskScore eq null"));
        assert!(!is("riskScore eq 'High'"));
        assert!(is("riskScore ne 'High'"));
        assert!(!is("computerDnsName eq null"));
        assert!(!is("computerDnsName eq 'it''s'"));
    }

    #[test]
    fn what_cannot_be_read_says_where() {
        assert_eq!(
            refused("osPlatform eq 'Windows10'"),
            "The property 'osPlatform' cannot be used in the $filter query option."
        );
        assert_eq!(
            refused("computerDnsName eq 'a"),
            "Syntax error at position 19 in 'computerDnsName eq 'a': the string literal is not closed."
        );
        assert_eq!(
            refused("computerDnsName has 'a'"),
            "Syntax error at position 16: an operator (eq, ne, gt, ge, lt, le) was expected, not 'has'."
        );
        assert_eq!(
            refused("lastSeen gt 'yesterday'"),
            "The value 'yesterday' at position 12 is not a date and time such as 2024-01-31Z or 2024-01-31T08:00:00Z, as 'lastSeen' needs."
        );
        assert_eq!(
            refused("osBuild eq 1 extra"),
            "Syntax error at position 13 in 'osBuild eq 1 extra': unexpected 'extra'."
        );
        assert_eq!(
            refused("(osBuild eq 1"),
            "Syntax error: the $filter ends where ')' was expected."
        );
        assert_eq!(
            refused("osBuild gt null"),
            "Syntax error at position 11: null can only be compared with eq or ne."
        );
    }
}
