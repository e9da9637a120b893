//! URI templates (`envoy.path.match.uri_template`): `/a/*/b` (`*` one path segment),
//! `/**/b` (`**` any text including `/`), `{name}` and `{name=...}` variables, compiled to
//! the whole-path regex Envoy's uri_template library matches with. Istio's `{*}`/`{**}`
//! path templates arrive in this form.

/// The characters a path segment may hold (RFC 3986 pchar minus `*`), as a class body.
const LITERAL: &str = r"a-zA-Z0-9\-._~%!$&'()+,;:@=";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Glob {
    /// `*`: one path segment, at least one character.
    Path,
    /// `**`: any text, `/` included, possibly empty.
    Text,
}

enum Part {
    Literal(String),
    Glob(Glob),
}

/// The anchored regex for `template`, or why the template is invalid.
pub fn to_regex(template: &str) -> Result<String, String> {
    if !template.starts_with('/') || !template.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!("invalid pattern {template:?}"));
    }
    let mut out = String::from("^");
    let mut seen_text_glob = false;
    let mut previous_separator = false;
    let mut rest = template;
    let mut variables = Vec::new();
    while !rest.is_empty() {
        let (parts, is_separator, remaining) = if rest.starts_with('{') {
            let close = rest
                .find('}')
                .ok_or_else(|| format!("unmatched variable bracket in {rest:?}"))?;
            let body = &rest[1..close];
            let (name, matcher) = body.split_once('=').unwrap_or((body, ""));
            if !valid_name(name) {
                return Err(format!("invalid variable name {name:?}"));
            }
            if variables.contains(&name) {
                return Err(format!("repeated variable name {name:?}"));
            }
            variables.push(name);
            let parts = if body.contains('=') {
                if matcher.is_empty() {
                    return Err("empty variable match".to_string());
                }
                parse_parts(matcher)?
            } else {
                vec![Part::Glob(Glob::Path)]
            };
            let sep = matches!(parts.first(), Some(Part::Literal(l)) if l == "/");
            (parts, sep, &rest[close + 1..])
        } else {
            let (part, remaining) = next_part(rest)?;
            let sep = matches!(&part, Part::Literal(l) if l == "/");
            (vec![part], sep, remaining)
        };
        if previous_separator && is_separator {
            return Err("double slashes in the template".to_string());
        }
        previous_separator = is_separator;
        for p in &parts {
            match p {
                Part::Literal(l) => out.push_str(&regex::escape(l)),
                Part::Glob(g) => {
                    if seen_text_glob {
                        return Err("glob after text glob".to_string());
                    }
                    seen_text_glob = *g == Glob::Text;
                    out.push_str(&match g {
                        Glob::Path => format!("[{LITERAL}]+"),
                        Glob::Text => format!("[{LITERAL}/]*"),
                    });
                }
            }
        }
        rest = remaining;
    }
    out.push('$');
    Ok(out)
}

/// Operators and literals of a variable's match (`a/**`).
fn parse_parts(mut text: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    while !text.is_empty() {
        let after_glob = matches!(parts.last(), Some(Part::Glob(_)));
        if text.starts_with('*') && after_glob {
            return Err("two globs in a row".to_string());
        }
        if !text.starts_with('*') && !text.starts_with('/') && after_glob {
            return Err("a literal directly after a glob".to_string());
        }
        let (part, remaining) = next_part(text)?;
        parts.push(part);
        text = remaining;
    }
    Ok(parts)
}

/// One `*`/`**`, one `/`, or a literal up to the next `/` or `{`.
fn next_part(text: &str) -> Result<(Part, &str), String> {
    if let Some(rest) = text.strip_prefix("**") {
        return Ok((Part::Glob(Glob::Text), rest));
    }
    if let Some(rest) = text.strip_prefix('*') {
        return Ok((Part::Glob(Glob::Path), rest));
    }
    if let Some(rest) = text.strip_prefix('/') {
        return Ok((Part::Literal("/".to_string()), rest));
    }
    let end = text.find(['/', '{']).unwrap_or(text.len());
    let literal = &text[..end];
    if literal.is_empty() || !literal.chars().all(is_literal_char) {
        return Err(format!("invalid literal {literal:?}"));
    }
    Ok((Part::Literal(literal.to_string()), &text[end..]))
}

fn is_literal_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~%!$&'()+,;:@=".contains(c)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    (1..=16).contains(&name.len())
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::to_regex;
    use regex::Regex;

    fn matches(template: &str, path: &str) -> bool {
        Regex::new(&to_regex(template).unwrap())
            .unwrap()
            .is_match(path)
    }

    #[test]
    fn single_segment_glob_needs_exactly_one_segment() {
        assert!(matches("/path/template/*", "/path/template/x"));
        assert!(!matches("/path/template/*", "/path/template/"));
        assert!(!matches("/path/template/*", "/path/template/x/y"));
    }

    #[test]
    fn text_glob_spans_segments_and_may_be_empty() {
        assert!(matches("/**/path/template", "/a/b/path/template"));
        assert!(matches("/**/path/template", "//path/template"));
        assert!(!matches("/**/path/template", "/a/path/templates"));
        assert!(matches("/api/**", "/api/"));
        assert!(matches("/api/{rest=**}", "/api/v1/x"));
    }

    #[test]
    fn invalid_templates_are_refused() {
        assert!(to_regex("no-slash").is_err());
        assert!(to_regex("/**/*").is_err());
        assert!(to_regex("//a").is_err());
        assert!(to_regex("/a*b").is_err());
    }
}
