//! Whether a printed output is the one a document shows. Lines are compared without trailing
//! whitespace and trailing empty lines; the documented volatile parts (timings, sizes that
//! depend on the build) are written `...` in the shown output: inside a line `...` matches
//! any text, and a line that is only `...` matches any number of lines.

/// Whether `actual` is what `shown` shows.
pub fn matches(shown: &[String], actual: &[String]) -> bool {
    lines_match(&trimmed(shown), &trimmed(actual))
}

/// The shown output brought up to date with `actual`: unchanged when it matches; otherwise
/// the printed lines, keeping a shown line (with its `...`) wherever it still matches the
/// line printed at its place.
pub fn blessed(shown: &[String], actual: &[String]) -> Vec<String> {
    if matches(shown, actual) {
        return shown.to_vec();
    }
    let (s, a) = (trimmed(shown), trimmed(actual));
    let mut out: Vec<String> = a
        .iter()
        .enumerate()
        .map(|(i, line)| match s.get(i) {
            Some(old) if old != "..." && line_matches(old, line) => old.clone(),
            _ => line.clone(),
        })
        .collect();
    // The block keeps the blank line that separated this output from the next command.
    if shown.len() > s.len() {
        out.extend(shown[s.len()..].iter().cloned());
    }
    out
}

fn trimmed(lines: &[String]) -> Vec<String> {
    let mut v: Vec<String> = lines.iter().map(|l| l.trim_end().to_owned()).collect();
    while v.last().is_some_and(String::is_empty) {
        v.pop();
    }
    v
}

fn lines_match(shown: &[String], actual: &[String]) -> bool {
    match shown.split_first() {
        None => actual.is_empty(),
        Some((first, rest)) if first == "..." => {
            (0..=actual.len()).any(|skip| lines_match(rest, &actual[skip..]))
        }
        Some((first, rest)) => actual
            .split_first()
            .is_some_and(|(a, more)| line_matches(first, a) && lines_match(rest, more)),
    }
}

/// One shown line against one printed line, `...` matching any text.
fn line_matches(shown: &str, actual: &str) -> bool {
    let mut parts = shown.split("...");
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = actual.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|l| (*l).to_owned()).collect()
    }

    #[test]
    fn one_changed_character_is_a_mismatch() {
        assert!(matches(&v(&["hello", "world"]), &v(&["hello", "world"])));
        assert!(!matches(&v(&["hello", "world"]), &v(&["hello", "worle"])));
        assert!(!matches(&v(&["hello"]), &v(&["hello", "world"])));
        assert!(!matches(&v(&["hello", "world"]), &v(&["hello"])));
    }

    #[test]
    fn trailing_blanks_do_not_count() {
        assert!(matches(&v(&["a  ", "", ""]), &v(&["a"])));
        assert!(!matches(&v(&["", "a"]), &v(&["a"])));
    }

    #[test]
    fn dots_match_any_text_inside_a_line() {
        assert!(line_matches("took ... s", "took 1.25 s"));
        assert!(line_matches("a ... b ... c", "a 1 b 2 c"));
        assert!(line_matches("...", "anything"));
        assert!(line_matches("x...", "x"));
        assert!(!line_matches("took ... s", "took 1.25 ms!"));
        assert!(!line_matches("a ... b", "a 1 c"));
        // The end must not overlap the start.
        assert!(!line_matches("ab...ba", "aba"));
    }

    #[test]
    fn a_dots_line_matches_any_number_of_lines() {
        let shown = v(&["first", "...", "last"]);
        assert!(matches(&shown, &v(&["first", "last"])));
        assert!(matches(&shown, &v(&["first", "1", "2", "last"])));
        assert!(!matches(&shown, &v(&["first", "1", "2"])));
    }

    #[test]
    fn blessing_keeps_the_lines_that_still_match() {
        let shown = v(&["took ... s", "rows 10", ""]);
        let actual = v(&["took 2.0 s", "rows 11"]);
        assert_eq!(blessed(&shown, &actual), v(&["took ... s", "rows 11", ""]));
        let same = v(&["took 3 s", "rows 10"]);
        assert_eq!(blessed(&shown, &same), shown);
    }
}
