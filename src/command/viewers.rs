//! The shapes of what viewers and the room's polls send: names, messages, a poll's question and
//! options. Checked before the agent sees the command, so a bad one changes nothing.

/// Longest viewer name, in characters.
pub const MAX_VIEWER_NAME: usize = 40;
/// Longest viewer chat message or question, in characters.
pub const MAX_VIEWER_TEXT: usize = 500;
/// Longest poll question, in characters.
pub const MAX_POLL_QUESTION: usize = 200;
/// Longest poll option, in characters.
pub const MAX_POLL_OPTION: usize = 80;
/// Fewest options a poll has.
pub const MIN_POLL_OPTIONS: usize = 2;
/// Most options a poll has.
pub const MAX_POLL_OPTIONS: usize = 6;

/// Trimmed, non-empty, within `max` characters, no control characters (a newline in a relayed
/// message could forge a second chat line in the room).
fn printable(v: &str, max: usize) -> bool {
    !v.trim().is_empty() && v.chars().count() <= max && !v.chars().any(|c| c.is_control())
}

/// Checks a viewer's name.
pub(super) fn viewer_name(name: &str) -> Result<(), String> {
    if !printable(name, MAX_VIEWER_NAME) {
        return Err(format!(
            "name: must be 1 to {MAX_VIEWER_NAME} printable characters"
        ));
    }
    Ok(())
}

/// Checks a viewer's name and text.
pub(super) fn viewer_text(name: &str, text: &str) -> Result<(), String> {
    viewer_name(name)?;
    if !printable(text, MAX_VIEWER_TEXT) {
        return Err(format!(
            "text: must be 1 to {MAX_VIEWER_TEXT} printable characters"
        ));
    }
    Ok(())
}

/// Checks a poll: a question, and 2 to 6 options that differ once trimmed and case is ignored.
pub(super) fn poll_shape(question: &str, options: &[String]) -> Result<(), String> {
    if !printable(question, MAX_POLL_QUESTION) {
        return Err(format!(
            "question: must be 1 to {MAX_POLL_QUESTION} printable characters"
        ));
    }
    if !(MIN_POLL_OPTIONS..=MAX_POLL_OPTIONS).contains(&options.len()) {
        return Err(format!(
            "options: {} given; a poll has {MIN_POLL_OPTIONS} to {MAX_POLL_OPTIONS}",
            options.len()
        ));
    }
    for (i, o) in options.iter().enumerate() {
        if !printable(o, MAX_POLL_OPTION) {
            return Err(format!(
                "options[{i}]: must be 1 to {MAX_POLL_OPTION} printable characters"
            ));
        }
        let key = o.trim().to_lowercase();
        if options[..i].iter().any(|p| p.trim().to_lowercase() == key) {
            return Err(format!("options[{i}]: `{}` is given twice", o.trim()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_poll_needs_a_question_and_two_to_six_distinct_options() {
        assert!(poll_shape("Lunch?", &opts(&["Pizza", "Sushi"])).is_ok());
        let cases: [(&str, Vec<String>, &str); 6] = [
            ("  ", opts(&["a", "b"]), "question"),
            ("Q?", opts(&["a"]), "options: 1 given"),
            ("Q?", opts(&["a", "b", "c", "d", "e", "f", "g"]), "7 given"),
            ("Q?", opts(&["Pizza", " pizza "]), "options[1]"),
            ("Q?", opts(&["a", ""]), "options[1]"),
            ("Q?\nforged", opts(&["a", "b"]), "question"),
        ];
        for (q, o, want) in cases {
            let e = poll_shape(q, &o).unwrap_err();
            assert!(e.contains(want), "{q:?} {o:?}: {e}");
        }
        let long = "x".repeat(MAX_POLL_OPTION + 1);
        assert!(poll_shape("Q?", &[long, "b".into()]).is_err());
    }

    #[test]
    fn names_and_texts_are_printable_and_bounded() {
        assert!(viewer_text("Ana", "hi").is_ok());
        assert!(viewer_name("").unwrap_err().starts_with("name:"));
        assert!(viewer_text("Ana", "a\u{7}")
            .unwrap_err()
            .starts_with("text:"));
        assert!(viewer_name(&"n".repeat(MAX_VIEWER_NAME + 1)).is_err());
    }
}
