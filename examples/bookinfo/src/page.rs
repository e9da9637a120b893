//! The product page's HTML, written with `format!`: the book, its details and its reviews with stars.

use serde_json::Value;
use std::fmt::Write;

/// Shown with the details' error when details failed.
pub const DETAILS_ERROR: &str = "Error fetching product details";
/// Shown with the reviews' error when reviews failed.
pub const REVIEWS_ERROR: &str = "Error fetching product reviews";
/// The reason productpage gives for missing details.
pub const DETAILS_UNAVAILABLE: &str =
    "Sorry, product details are currently unavailable for this book.";
/// The reason productpage gives for missing reviews.
pub const REVIEWS_UNAVAILABLE: &str =
    "Sorry, product reviews are currently unavailable for this book.";

/// Everything one page shows; `Err` holds the message to print instead of that section.
#[derive(Debug)]
pub struct Page<'a> {
    pub user: Option<&'a str>,
    pub product: &'a Value,
    pub details: Result<Value, &'static str>,
    pub reviews: Result<Value, &'static str>,
}

/// `<`, `>`, `&` and quotes escaped, for text that came from a user or another service.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

pub fn render(p: &Page) -> String {
    let title = escape(p.product["title"].as_str().unwrap_or("Unknown"));
    // The description is the catalogue's own HTML, not user input.
    let description = p.product["descriptionHtml"].as_str().unwrap_or_default();
    let account = match p.user {
        Some(user) => format!(
            "<span class=\"user\">Signed in as <b>{}</b></span> <a href=\"/logout\">sign out</a>",
            escape(user)
        ),
        None => "<form method=\"post\" action=\"/login\">\
                 <input name=\"username\" placeholder=\"User name\"> \
                 <input name=\"passwd\" type=\"password\" placeholder=\"Password\"> \
                 <button type=\"submit\">Sign in</button></form>"
            .to_string(),
    };
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Simple Bookstore App</title></head>\n\
         <body>\n<nav><a href=\"/productpage\">BookInfo Sample</a> {account}</nav>\n\
         <h1>{title}</h1>\n<p>{description}</p>\n\
         <div class=\"details\">\n{}</div>\n<div class=\"reviews\">\n{}</div>\n</body></html>\n",
        details(&p.details),
        reviews(&p.reviews),
    )
}

fn details(d: &Result<Value, &'static str>) -> String {
    let d = match d {
        Ok(d) => d,
        Err(why) => return format!("<h4 class=\"error\">{DETAILS_ERROR}</h4>\n<p>{why}</p>\n"),
    };
    let mut out = String::from("<h4>Book Details</h4>\n<dl>\n");
    for (label, key) in [
        ("Type", "type"),
        ("Pages", "pages"),
        ("Publisher", "publisher"),
        ("Language", "language"),
        ("ISBN-10", "ISBN-10"),
        ("ISBN-13", "ISBN-13"),
    ] {
        let value = match &d[key] {
            Value::String(s) => escape(s),
            Value::Null => "unknown".into(),
            other => escape(&other.to_string()),
        };
        let _ = writeln!(out, "<dt>{label}:</dt><dd>{value}</dd>");
    }
    out.push_str("</dl>\n");
    out
}

fn reviews(r: &Result<Value, &'static str>) -> String {
    let r = match r {
        Ok(r) => r,
        Err(why) => return format!("<h4 class=\"error\">{REVIEWS_ERROR}</h4>\n<p>{why}</p>\n"),
    };
    let mut out = String::from("<h4>Book Reviews</h4>\n");
    for review in r["reviews"].as_array().into_iter().flatten() {
        let text = escape(review["text"].as_str().unwrap_or_default());
        let reviewer = escape(review["reviewer"].as_str().unwrap_or_default());
        let _ = writeln!(
            out,
            "<blockquote><p>{text}</p><small>{reviewer}</small>{}</blockquote>",
            rating(&review["rating"])
        );
    }
    if let Some(pod) = r["podname"].as_str() {
        let _ = writeln!(
            out,
            "<dl><dt>Reviews served by:</dt><dd>{}</dd></dl>",
            escape(pod)
        );
    }
    out
}

/// Five glyphs, the first `stars` filled, in the review's colour; nothing for no rating.
fn rating(r: &Value) -> String {
    if let Some(error) = r["error"].as_str() {
        return format!(
            "<p class=\"rating-error\" style=\"color: red\">{}</p>",
            escape(error)
        );
    }
    let Some(stars) = r["stars"].as_u64() else {
        return String::new();
    };
    let stars = stars.min(5) as usize;
    // Only the two colours Bookinfo uses; anything else would be injected markup.
    let color = match r["color"].as_str() {
        Some("red") => "red",
        _ => "black",
    };
    format!(
        "<span class=\"stars\" style=\"color: {color}\" title=\"{stars} of 5\">{}{}</span>",
        "\u{2605}".repeat(stars),
        "\u{2606}".repeat(5 - stars)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn product() -> Value {
        json!({"title": "The Comedy of Errors", "descriptionHtml": "twins"})
    }

    #[test]
    fn stars_take_the_reviews_colour_and_v1_has_none() {
        let product = product();
        let reviews = json!({"podname": "reviews-v3", "reviews": [
            {"reviewer": "R1", "text": "good", "rating": {"stars": 4, "color": "red"}},
            {"reviewer": "R2", "text": "<b>meh</b>"},
        ]});
        let html = render(&Page {
            user: Some("jason"),
            product: &product,
            details: Ok(json!({"type": "paperback", "pages": 200})),
            reviews: Ok(reviews),
        });
        assert!(
            html.contains(
                "<span class=\"stars\" style=\"color: red\" title=\"4 of 5\">★★★★☆</span>"
            ),
            "{html}"
        );
        assert_eq!(html.matches("class=\"stars\"").count(), 1, "{html}");
        assert!(html.contains("&lt;b&gt;meh"), "{html}");
        assert!(html.contains("Signed in as <b>jason</b>"), "{html}");
        assert!(html.contains("<dd>200</dd>"), "{html}");
        assert!(
            html.contains("Reviews served by:</dt><dd>reviews-v3"),
            "{html}"
        );
    }

    #[test]
    fn failures_show_their_headline_and_reason() {
        let product = product();
        let html = render(&Page {
            user: None,
            product: &product,
            details: Err(DETAILS_UNAVAILABLE),
            reviews: Err(REVIEWS_UNAVAILABLE),
        });
        assert!(
            html.contains(DETAILS_ERROR) && html.contains(DETAILS_UNAVAILABLE),
            "{html}"
        );
        assert!(
            html.contains(REVIEWS_ERROR) && html.contains(REVIEWS_UNAVAILABLE),
            "{html}"
        );
        assert!(html.contains("action=\"/login\""), "{html}");

        let rating = rating(&json!({"error": "Ratings service is currently unavailable"}));
        assert!(rating.contains("Ratings service is currently unavailable"));
    }
}
