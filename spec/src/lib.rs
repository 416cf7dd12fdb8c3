//! Specification documents and golden data; see `spec/wire.md`.

/// The cells of the Markdown table rows under the first line of `doc` containing `heading`
/// (header and separator rows skipped), trimmed; for the tests that hold documents to code.
pub fn table_rows(doc: &str, heading: &str) -> Vec<Vec<String>> {
    let start = doc
        .find(heading)
        .unwrap_or_else(|| panic!("no heading {heading}"));
    doc[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect()
}
