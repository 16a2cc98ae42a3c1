//! Indented JSON, byte for byte what `serde_json::to_writer_pretty` writes (two spaces a
//! level), but with each line break and its indentation written at once: serde_json's own
//! formatter writes the indentation one level at a time, and a snapshot of 10,000 TCP and
//! 10,000 Unix listeners is 300,000 lines, most of them five or six levels deep.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::Formatter;

/// Levels of indentation written in one piece; deeper ones take a loop.
const DEPTH: usize = 32;

/// `,`, a line break and `DEPTH` levels of indentation: each break is a slice of it.
const BREAK: [u8; 2 + 2 * DEPTH] = {
    let mut b = [b' '; 2 + 2 * DEPTH];
    b[0] = b',';
    b[1] = b'\n';
    b
};

/// serde_json's `PrettyFormatter` with two spaces, line breaks written whole.
#[derive(Debug, Default)]
struct Pretty {
    depth: usize,
    has_value: bool,
}

impl Pretty {
    /// A line break (after a comma when `comma`) and the current indentation.
    fn newline<W: ?Sized + Write>(&self, w: &mut W, comma: bool) -> io::Result<()> {
        let from = usize::from(!comma);
        if self.depth <= DEPTH {
            return w.write_all(&BREAK[from..2 + 2 * self.depth]);
        }
        w.write_all(&BREAK[from..2])?;
        for _ in 0..self.depth {
            w.write_all(b"  ")?;
        }
        Ok(())
    }

    /// `[` or `{`: one level deeper, nothing in it yet.
    fn open<W: ?Sized + Write>(&mut self, w: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.depth += 1;
        self.has_value = false;
        w.write_all(bracket)
    }

    /// `]` or `}`, on a line of its own when something came before it.
    fn close<W: ?Sized + Write>(&mut self, w: &mut W, bracket: &[u8]) -> io::Result<()> {
        self.depth -= 1;
        if self.has_value {
            self.newline(w, false)?;
        }
        w.write_all(bracket)
    }
}

impl Formatter for Pretty {
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.open(w, b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.newline(w, !first)
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.open(w, b"{")
    }

    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.close(w, b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.newline(w, !first)
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

/// `serde_json::to_writer_pretty`, the same bytes.
pub fn to_writer<W: Write, T: ?Sized + Serialize>(w: W, value: &T) -> serde_json::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(w, Pretty::default());
    value.serialize(&mut ser)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    fn both<T: serde::Serialize>(v: &T) -> (String, String) {
        let mut ours = Vec::new();
        super::to_writer(&mut ours, v).unwrap();
        let theirs = serde_json::to_string_pretty(v).unwrap();
        (String::from_utf8(ours).unwrap(), theirs)
    }

    #[test]
    fn the_same_bytes_as_serde_json_pretty() {
        let v = json!({
            "a": [], "b": {}, "c": [1, [2, []], {"d": {}}], "e": "x\n\"y\"",
            "f": [{"g": null, "h": [true, false]}, {}], "i": 1.5, "j": [[[[]]]]
        });
        let (ours, theirs) = both(&v);
        assert_eq!(ours, theirs);
        // Deeper than one piece of indentation.
        let mut deep = json!([1, {"k": "v"}]);
        for i in 0..40 {
            deep = json!({ "n": i, "in": [deep, {}] });
        }
        let (ours, theirs) = both(&deep);
        assert_eq!(ours, theirs);
        let indent = |l: &str| l.len() - l.trim_start().len();
        assert!(ours.lines().any(|l| indent(l) > 2 * super::DEPTH));
        let (ours, theirs) = both(&json!([]));
        assert_eq!((ours.as_str(), theirs.as_str()), ("[]", "[]"));
    }

    #[test]
    fn a_recorded_snapshot_is_written_as_serde_json_writes_it() {
        for f in std::fs::read_dir("fixtures/snapshots").unwrap() {
            let path = f.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let Ok(snap) = serde_json::from_str::<crate::model::Snapshot>(&text) else {
                continue;
            };
            let (ours, theirs) = both(&snap);
            assert!(ours == theirs, "{}", path.display());
        }
    }
}
