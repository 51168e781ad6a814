//! Words for a POSIX shell: remote commands over ssh, cron lines.

/// `s` as one shell word: as it is when it holds only plain path characters, else in single
/// quotes.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:=@,".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn quotes_for_the_shell() {
        assert_eq!(super::quote("/a/b.c"), "/a/b.c");
        assert_eq!(super::quote("it's"), "'it'\\''s'");
        assert_eq!(super::quote("a b"), "'a b'");
        assert_eq!(super::quote(""), "''");
    }
}
