//! The `.npy` decoder behind [`crate::NumpyExport`]: format versions 1.0, 2.0 and 3.0,
//! C order, the dtypes an export writes (`<f8`, `<i8`, `<U{n}`) and nothing else. The
//! header dict is parsed as the small Python literal it is (no evaluation), and the size
//! its shape and dtype imply is checked against the file's real length before any data
//! buffer is allocated, so a damaged or hostile file costs at most its header and a clear
//! error naming it. It does not memory-map, convert dtypes or read pickled objects.

use std::{
    fs::File,
    io::{self, Read},
    path::Path,
};

use crate::{Error, Result};

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Larger headers are refused: ours are a few hundred bytes, and numpy itself refuses
/// headers over 10,000 bytes unless told otherwise.
const MAX_HEADER: usize = 64 * 1024;

/// Items decoded per read, so a matrix is never held twice (as bytes and as values).
const CHUNK_ITEMS: usize = 8192;

/// An element type this decoder accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NpyDtype {
    /// float64, little-endian (`<f8`).
    F8,
    /// int64, little-endian (`<i8`).
    I8,
    /// Fixed-width unicode of this many code points (`<U{n}`).
    U(usize),
}

impl NpyDtype {
    fn parse(descr: &str) -> Option<NpyDtype> {
        match descr {
            "<f8" => Some(NpyDtype::F8),
            "<i8" => Some(NpyDtype::I8),
            _ => {
                let n = descr.strip_prefix("<U")?;
                if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                n.parse().ok().filter(|n| *n > 0).map(NpyDtype::U)
            }
        }
    }

    fn item_size(self) -> Option<usize> {
        match self {
            NpyDtype::F8 | NpyDtype::I8 => Some(8),
            NpyDtype::U(n) => n.checked_mul(4),
        }
    }

    /// The `descr` spelling, for messages.
    pub(crate) fn descr(self) -> String {
        match self {
            NpyDtype::F8 => "<f8".to_owned(),
            NpyDtype::I8 => "<i8".to_owned(),
            NpyDtype::U(n) => format!("<U{n}"),
        }
    }
}

/// The decoded values of a file.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum NpyData {
    F64(Vec<f64>),
    I64(Vec<i64>),
    Str(Vec<String>),
}

/// A decoded file: its shape and its values in C order.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NpyArray {
    pub shape: Vec<usize>,
    pub data: NpyData,
}

/// The parsed header dict.
#[derive(Debug, PartialEq, Eq)]
struct Header {
    dtype: NpyDtype,
    shape: Vec<usize>,
}

fn invalid(path: &Path, reason: impl Into<String>) -> Error {
    Error::InvalidNpy {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn read_err(path: &Path, source: io::Error) -> Error {
    if source.kind() == io::ErrorKind::UnexpectedEof {
        // The length was checked against the metadata: the file shrank while being read.
        return invalid(path, "the file ended before its data (was it truncated?)");
    }
    Error::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// Shape text as numpy prints it: `(3,)`, `(2, 24)`.
pub(crate) fn shape_text(shape: &[usize]) -> String {
    match shape {
        [n] => format!("({n},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Reads and checks a whole `.npy` file.
pub(crate) fn read_npy(path: &Path) -> Result<NpyArray> {
    let mut file = File::open(path).map_err(|e| read_err(path, e))?;
    let file_len = file.metadata().map_err(|e| read_err(path, e))?.len();
    let mut prefix = [0u8; 12];
    let short = || {
        invalid(
            path,
            format!("{file_len} bytes is too short for a .npy header"),
        )
    };
    if file_len < 10 {
        return Err(short());
    }
    file.read_exact(&mut prefix[..10])
        .map_err(|e| read_err(path, e))?;
    if &prefix[..6] != MAGIC {
        return Err(invalid(path, "not a .npy file (bad magic bytes)"));
    }
    let (header_len, prefix_len) = match prefix[6] {
        1 => (usize::from(u16::from_le_bytes([prefix[8], prefix[9]])), 10),
        2 | 3 => {
            if file_len < 12 {
                return Err(short());
            }
            file.read_exact(&mut prefix[10..12])
                .map_err(|e| read_err(path, e))?;
            let len = u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]);
            (usize::try_from(len).unwrap_or(usize::MAX), 12)
        }
        v => {
            return Err(invalid(
                path,
                format!("unsupported .npy format version {v}.{}", prefix[7]),
            ));
        }
    };
    if header_len > MAX_HEADER {
        return Err(invalid(
            path,
            format!("header of {header_len} bytes exceeds the {MAX_HEADER}-byte limit"),
        ));
    }
    // Both fit in u64: header_len is at most MAX_HEADER.
    let data_start = (prefix_len + header_len) as u64;
    if data_start > file_len {
        return Err(invalid(
            path,
            format!("header of {header_len} bytes runs past the end of the {file_len}-byte file"),
        ));
    }
    let mut text = vec![0u8; header_len];
    file.read_exact(&mut text).map_err(|e| read_err(path, e))?;
    let header = parse_header(&text).map_err(|reason| invalid(path, reason))?;

    let too_large = || {
        invalid(
            path,
            format!("shape {} is too large", shape_text(&header.shape)),
        )
    };
    let items = header
        .shape
        .iter()
        .try_fold(1usize, |acc, d| acc.checked_mul(*d))
        .ok_or_else(too_large)?;
    let needed_bytes = header
        .dtype
        .item_size()
        .and_then(|s| s.checked_mul(items))
        .ok_or_else(too_large)?;
    let needed = u64::try_from(needed_bytes).map_err(|_| too_large())?;
    let held = file_len - data_start;
    if held != needed {
        let what = if held < needed {
            "truncated: "
        } else {
            "trailing bytes: "
        };
        return Err(invalid(
            path,
            format!(
                "{what}shape {} of {} needs {needed} data bytes, the file holds {held}",
                shape_text(&header.shape),
                header.dtype.descr()
            ),
        ));
    }
    // From here on every allocation is bounded by the file's real length.
    let data = match header.dtype {
        NpyDtype::F8 => NpyData::F64(read_items(&mut file, items, f64::from_le_bytes, path)?),
        NpyDtype::I8 => NpyData::I64(read_items(&mut file, items, i64::from_le_bytes, path)?),
        NpyDtype::U(width) => {
            let mut bytes = vec![0u8; needed_bytes];
            file.read_exact(&mut bytes).map_err(|e| read_err(path, e))?;
            NpyData::Str(decode_strings(&bytes, width).map_err(|r| invalid(path, r))?)
        }
    };
    Ok(NpyArray {
        shape: header.shape,
        data,
    })
}

/// Reads `items` 8-byte values, decoding them chunk by chunk.
fn read_items<T>(
    file: &mut File,
    items: usize,
    decode: fn([u8; 8]) -> T,
    path: &Path,
) -> Result<Vec<T>> {
    let mut out = Vec::with_capacity(items);
    let mut buf = vec![0u8; 8 * CHUNK_ITEMS.min(items)];
    while out.len() < items {
        let n = (items - out.len()).min(CHUNK_ITEMS);
        let chunk = &mut buf[..8 * n];
        file.read_exact(chunk).map_err(|e| read_err(path, e))?;
        let (words, _) = chunk.as_chunks::<8>();
        out.extend(words.iter().map(|w| decode(*w)));
    }
    Ok(out)
}

/// UTF-32LE items of `width` code points, NUL padded at the end (as numpy strips them).
fn decode_strings(bytes: &[u8], width: usize) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for item in bytes.chunks_exact(4 * width) {
        let (units, _) = item.as_chunks::<4>();
        let mut s = String::new();
        let used = units
            .iter()
            .rposition(|u| *u != [0; 4])
            .map_or(0, |i| i + 1);
        for u in &units[..used] {
            let code = u32::from_le_bytes(*u);
            let c = char::from_u32(code).ok_or_else(|| {
                format!(
                    "string item {} holds invalid code point {code:#x}",
                    out.len()
                )
            })?;
            s.push(c);
        }
        out.push(s);
    }
    Ok(out)
}

/// Parses the header dict `{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }`
/// followed by space padding and a newline.
fn parse_header(bytes: &[u8]) -> Result<Header, String> {
    if !bytes.is_ascii() {
        return Err("header is not ASCII".to_owned());
    }
    let mut p = Parser { s: bytes, i: 0 };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    p.expect(b'{')?;
    loop {
        p.skip_ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.skip_ws();
        p.expect(b':')?;
        p.skip_ws();
        let seen = match key.as_str() {
            "descr" => descr.replace(p.string()?).is_some(),
            "fortran_order" => fortran.replace(p.boolean()?).is_some(),
            "shape" => shape.replace(p.tuple()?).is_some(),
            other => return Err(format!("header has an unexpected key {other:?}")),
        };
        if seen {
            return Err(format!("header repeats the key {key:?}"));
        }
        p.skip_ws();
        if !p.eat(b',') {
            p.skip_ws();
            p.expect(b'}')?;
            break;
        }
    }
    if p.s[p.i..].iter().any(|b| !matches!(b, b' ' | b'\n')) {
        return Err("header has text after its dict".to_owned());
    }
    let descr = descr.ok_or("header has no 'descr'")?;
    let fortran = fortran.ok_or("header has no 'fortran_order'")?;
    let shape = shape.ok_or("header has no 'shape'")?;
    if fortran {
        return Err("fortran_order is True; only C order is read".to_owned());
    }
    let dtype = NpyDtype::parse(&descr)
        .ok_or_else(|| format!("unexpected dtype {descr:?}: expected '<f8', '<i8' or '<U{{n}}'"))?;
    Ok(Header { dtype, shape })
}

/// A cursor over the header text.
struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let hit = self.peek() == Some(b);
        if hit {
            self.i += 1;
        }
        hit
    }

    fn expect(&mut self, b: u8) -> Result<(), String> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(format!(
                "malformed header: expected {:?} at byte {}",
                char::from(b),
                self.i
            ))
        }
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// A single- or double-quoted string without escapes (none occur in npy headers).
    fn string(&mut self) -> Result<String, String> {
        let quote = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => {
                return Err(format!(
                    "malformed header: expected a string at byte {}",
                    self.i
                ));
            }
        };
        self.i += 1;
        let start = self.i;
        while let Some(b) = self.peek() {
            if b == quote {
                let text = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                self.i += 1;
                return Ok(text);
            }
            if b == b'\\' {
                return Err("malformed header: escapes are not supported".to_owned());
            }
            self.i += 1;
        }
        Err("malformed header: unterminated string".to_owned())
    }

    fn boolean(&mut self) -> Result<bool, String> {
        let rest = &self.s[self.i..];
        for (word, value) in [(&b"True"[..], true), (&b"False"[..], false)] {
            if rest.starts_with(word) {
                self.i += word.len();
                return Ok(value);
            }
        }
        Err(format!(
            "malformed header: expected True or False at byte {}",
            self.i
        ))
    }

    /// A tuple of non-negative integers: `()`, `(3,)`, `(2, 3)`.
    fn tuple(&mut self) -> Result<Vec<usize>, String> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        let mut trailing_comma = false;
        loop {
            self.skip_ws();
            if self.eat(b')') {
                break;
            }
            if self.peek() == Some(b'-') {
                return Err("shape has a negative dimension".to_owned());
            }
            let start = self.i;
            while self.peek().is_some_and(|b| b.is_ascii_digit()) {
                self.i += 1;
            }
            let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default();
            if digits.is_empty() {
                return Err(format!(
                    "malformed header: expected a dimension at byte {}",
                    self.i
                ));
            }
            let dim = digits
                .parse::<usize>()
                .map_err(|_| format!("shape dimension {digits} is too large"))?;
            dims.push(dim);
            self.skip_ws();
            trailing_comma = self.eat(b',');
            if !trailing_comma {
                self.skip_ws();
                self.expect(b')')?;
                break;
            }
        }
        // `(3)` is the integer 3 in Python, not a shape.
        if dims.len() == 1 && !trailing_comma {
            return Err("shape is not a tuple".to_owned());
        }
        Ok(dims)
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use std::fs;

    use super::*;
    use crate::npy;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p = dir.join(name);
        fs::write(&p, bytes).unwrap();
        p
    }

    /// A v1.0 file with a hand-written header dict and raw data bytes.
    fn raw(dict: &str, data: &[u8]) -> Vec<u8> {
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        b.extend_from_slice(dict.as_bytes());
        b.extend_from_slice(data);
        b
    }

    fn err(dir: &Path, name: &str, bytes: &[u8]) -> String {
        let p = write(dir, name, bytes);
        let e = read_npy(&p).unwrap_err();
        let text = e.to_string();
        assert!(text.contains(name), "the message names the file: {text}");
        assert!(matches!(e, Error::InvalidNpy { .. }), "{e:?}");
        text
    }

    #[test]
    fn reads_what_the_encoder_writes() {
        let dir = tempfile::tempdir().unwrap();
        let vals = [1.5, f64::NAN, -0.0, f64::INFINITY, 4.0, 5.25];
        let p = write(dir.path(), "f.npy", &npy::encode_f64(&[2, 3], &vals));
        let a = read_npy(&p).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        let NpyData::F64(v) = a.data else { panic!() };
        assert_eq!(v.len(), 6);
        for (x, y) in v.iter().zip(vals) {
            assert_eq!(x.to_bits(), y.to_bits());
        }
        let times: Vec<i64> = (0..20_000).map(|i| i * 3_600_000 - 7).collect();
        let p = write(dir.path(), "i.npy", &npy::encode_i64(&[20_000], &times));
        assert_eq!(
            read_npy(&p).unwrap(),
            NpyArray {
                shape: vec![20_000],
                data: NpyData::I64(times)
            },
            "more than one read chunk"
        );
        let syms = vec!["BTCUSDT".to_owned(), "X".to_owned(), "É1".to_owned()];
        let p = write(dir.path(), "s.npy", &npy::encode_str(&syms));
        assert_eq!(read_npy(&p).unwrap().data, NpyData::Str(syms));
        let p = write(dir.path(), "e.npy", &npy::encode_i64(&[0, 24], &[]));
        assert_eq!(read_npy(&p).unwrap().shape, vec![0, 24]);
    }

    #[test]
    fn reads_hand_written_headers_and_later_versions() {
        let dir = tempfile::tempdir().unwrap();
        // Key order, quotes and spacing as other writers may produce them.
        let data: Vec<u8> = [7i64, -8].iter().flat_map(|v| v.to_le_bytes()).collect();
        let dict = "{\"shape\":(2 ,),'descr':'<i8','fortran_order':False}   \n";
        let p = write(dir.path(), "a.npy", &raw(dict, &data));
        assert_eq!(read_npy(&p).unwrap().data, NpyData::I64(vec![7, -8]));
        // Version 2.0: a 4-byte header length.
        let dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }\n";
        let mut b = b"\x93NUMPY\x02\x00".to_vec();
        b.extend_from_slice(&(dict.len() as u32).to_le_bytes());
        b.extend_from_slice(dict.as_bytes());
        b.extend_from_slice(&2.5f64.to_le_bytes());
        let p = write(dir.path(), "v2.npy", &b);
        assert_eq!(read_npy(&p).unwrap().data, NpyData::F64(vec![2.5]));
        // A 0-d array holds one item.
        let p = write(
            dir.path(),
            "scalar.npy",
            &raw(
                "{'descr': '<f8', 'fortran_order': False, 'shape': ()}",
                &[0; 8],
            ),
        );
        assert_eq!(read_npy(&p).unwrap().shape, Vec::<usize>::new());
    }

    #[test]
    fn hostile_files_are_refused_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let good = npy::encode_f64(&[2, 3], &[1.0; 6]);

        let e = err(
            d,
            "magic.npy",
            &[b"\x93NUMPX".as_slice(), &good[6..]].concat(),
        );
        assert!(e.contains("bad magic"), "{e}");
        let e = err(d, "empty.npy", b"");
        assert!(e.contains("too short"), "{e}");
        let e = err(d, "cut_header.npy", &good[..40]);
        assert!(e.contains("runs past the end"), "{e}");
        let e = err(d, "cut_data.npy", &good[..good.len() - 1]);
        assert!(
            e.contains("truncated") && e.contains("needs 48 data bytes, the file holds 47"),
            "{e}"
        );
        let e = err(d, "long.npy", &[good.as_slice(), &[0; 8]].concat());
        assert!(e.contains("trailing bytes"), "{e}");
        let mut v9 = good.clone();
        v9[6] = 9;
        let e = err(d, "version.npy", &v9);
        assert!(e.contains("version 9.0"), "{e}");

        // A header claiming a huge shape is refused before anything that size is allocated.
        let f8 =
            |shape: &str| format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}");
        let e = err(d, "huge.npy", &raw(&f8("(1000000000, 1000000)"), &[0; 8]));
        assert!(e.contains("truncated"), "{e}");
        let e = err(
            d,
            "overflow.npy",
            &raw(&f8("(18446744073709551615, 2)"), &[0; 8]),
        );
        assert!(e.contains("too large"), "{e}");
        let e = err(
            d,
            "digits.npy",
            &raw(&f8("(99999999999999999999999,)"), &[]),
        );
        assert!(e.contains("too large"), "{e}");
        let e = err(d, "negative.npy", &raw(&f8("(-1, 2)"), &[]));
        assert!(e.contains("negative"), "{e}");
        let e = err(d, "int.npy", &raw(&f8("(3)"), &[0; 24]));
        assert!(e.contains("not a tuple"), "{e}");
        let mut huge_len = good.clone();
        huge_len[6] = 2;
        huge_len[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = err(d, "header_len.npy", &huge_len);
        assert!(e.contains("exceeds"), "{e}");

        let fortran = "{'descr': '<f8', 'fortran_order': True, 'shape': (1,), }";
        let e = err(d, "fortran.npy", &raw(fortran, &[0; 8]));
        assert!(e.contains("fortran_order"), "{e}");
        for (name, descr) in [
            ("f4.npy", "<f4"),
            ("be.npy", ">f8"),
            ("obj.npy", "|O"),
            ("u0.npy", "<U0"),
            ("ux.npy", "<Ux"),
        ] {
            let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (1,), }}");
            let e = err(d, name, &raw(&dict, &[0; 8]));
            assert!(e.contains("unexpected dtype"), "{e}");
        }
        for (name, dict, why) in [
            ("nodict.npy", "'descr'", "expected '{'"),
            (
                "extra.npy",
                "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), 'x': 1}",
                "unexpected key",
            ),
            (
                "twice.npy",
                "{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (1,)}",
                "repeats",
            ),
            (
                "noshape.npy",
                "{'descr': '<f8', 'fortran_order': False}",
                "no 'shape'",
            ),
            (
                "after.npy",
                "{'descr': '<f8', 'fortran_order': False, 'shape': (1,)} x",
                "after its dict",
            ),
            ("open.npy", "{'descr': '<f8", "unterminated"),
            (
                "bool.npy",
                "{'descr': '<f8', 'fortran_order': 0, 'shape': (1,)}",
                "True or False",
            ),
        ] {
            let e = err(d, name, &raw(dict, &[0; 8]));
            assert!(e.contains(why), "{name}: {e}");
        }
        let e = err(d, "latin.npy", &raw("{'descr': '<f8\u{e9}'}", &[]));
        assert!(e.contains("not ASCII"), "{e}");
        let bad_char = raw(
            "{'descr': '<U1', 'fortran_order': False, 'shape': (1,), }",
            &0xD800u32.to_le_bytes(),
        );
        let e = err(d, "surrogate.npy", &bad_char);
        assert!(e.contains("invalid code point 0xd800"), "{e}");

        let missing = d.join("missing.npy");
        let e = read_npy(&missing).unwrap_err();
        assert!(matches!(e, Error::Read { .. }), "{e:?}");
        assert!(e.to_string().contains("missing.npy"), "{e}");
    }
}
