//! What the shop knows: one book, its details, two reviews and their ratings.

use serde_json::{json, Value};

/// The id of the only product.
pub const PRODUCT_ID: u32 = 0;

/// `GET /api/v1/products`: id, title and an HTML description per product.
pub fn products() -> Value {
    json!([{
        "id": PRODUCT_ID,
        "title": "The Comedy of Errors",
        "descriptionHtml": "<a href=\"https://en.wikipedia.org/wiki/The_Comedy_of_Errors\">Wikipedia summary</a>: \
            two pairs of identical twins, separated at birth, land in the same town on the same day \
            and are mistaken for one another by wives, merchants and officers alike, \
            until the whole city seems bewitched.",
    }])
}

/// The details service's answer for `id`.
pub fn details(id: u32) -> Value {
    json!({
        "id": id,
        "author": "William Shakespeare",
        "year": 1595,
        "type": "paperback",
        "pages": 200,
        "publisher": "PublisherA",
        "language": "English",
        "ISBN-10": "1234567890",
        "ISBN-13": "123-1234567890",
    })
}

/// Reviewer names and what they wrote, in page order.
pub const REVIEWS: &[(&str, &str)] = &[
    (
        "Reviewer1",
        "A riot from start to finish; the mix-ups pile up faster than the cast can explain them.",
    ),
    (
        "Reviewer2",
        "Great fun on stage, though thinner in ideas than the later plays.",
    ),
];

/// The ratings service's answer for `id`: stars per reviewer.
pub fn ratings(id: u32) -> Value {
    json!({"id": id, "ratings": {"Reviewer1": 5, "Reviewer2": 4}})
}
