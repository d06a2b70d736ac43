//! Splitting a YAML stream into its documents, keeping where each one starts so errors
//! can name the document and the line.

/// One document of a YAML stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document<'a> {
    /// 1-based position among the file's non-empty documents.
    pub index: usize,
    /// 1-based line of the file on which the document's text starts.
    pub first_line: usize,
    /// The document's text.
    pub text: &'a str,
}

/// Splits a YAML stream at its document markers (`---` and `...` at the start of a
/// line, which YAML forbids inside any scalar). Documents holding only comments and
/// blank lines are dropped; the rest are numbered from 1.
pub fn split_documents(stream: &str) -> Vec<Document<'_>> {
    let mut start = 0usize; // byte offset of the current document's text
    let mut start_line = 1usize;
    let mut offset = 0usize;
    let mut segments: Vec<(usize, usize, usize)> = Vec::new(); // (start, end, first line)
    for (line_no, line) in (1usize..).zip(stream.split_inclusive('\n')) {
        let bare = line.trim_end_matches(['\n', '\r']);
        let marker = |m: &str| {
            bare == m || (bare.starts_with(m) && bare[m.len()..].starts_with([' ', '\t']))
        };
        if marker("---") {
            segments.push((start, offset, start_line));
            // Text after the marker on the same line belongs to the new document.
            start = offset + 3;
            start_line = line_no;
        } else if marker("...") {
            segments.push((start, offset, start_line));
            start = offset + line.len();
            start_line = line_no + 1;
        }
        offset += line.len();
    }
    segments.push((start, stream.len(), start_line));
    let mut out = Vec::new();
    for (s, e, first_line) in segments {
        let text = &stream[s..e];
        let blank = text.lines().all(|l| {
            let t = l.trim();
            t.is_empty() || t.starts_with('#') || t.starts_with('%')
        });
        if !blank {
            out.push(Document {
                index: out.len() + 1,
                first_line,
                text,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_numbers_non_empty_documents() {
        let s = "# header\n---\na: 1\n---\n\n---\nb: 2\n...\n--- c: 3\n";
        let docs = split_documents(s);
        let texts: Vec<_> = docs.iter().map(|d| d.text.trim()).collect();
        assert_eq!(texts, ["a: 1", "b: 2", "c: 3"]);
        assert_eq!(docs.iter().map(|d| d.index).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(docs[0].first_line, 2);
        assert_eq!(docs[1].first_line, 6);
        assert_eq!(docs[2].first_line, 9);
    }

    #[test]
    fn no_marker_is_one_document() {
        let docs = split_documents("a: 1\nb: '---'\n");
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].text, "a: 1\nb: '---'\n");
    }

    #[test]
    fn markers_need_a_separator() {
        // `----` and `---x` are not markers.
        let docs = split_documents("a: |\n  x\n----: 1\n");
        assert_eq!(docs.len(), 1);
    }

    #[test]
    fn crlf_and_empty_input() {
        assert!(split_documents("").is_empty());
        assert!(split_documents("---\r\n---\r\n").is_empty());
        let docs = split_documents("a: 1\r\n---\r\nb: 2\r\n");
        assert_eq!(docs.len(), 2);
    }
}
