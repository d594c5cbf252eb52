//! The `.npy` encoder: format version 1.0, a header dict padded with spaces and a final
//! `'\n'` so the data starts at a multiple of 64 bytes, C order, little-endian dtypes
//! `<f8`, `<i8` and `<U{n}` (UTF-32LE code units, zero padded). It builds the whole file in
//! memory (one day's matrix); writing it to disk is `atomic.rs`'s job, reading `.npy` files
//! back `npy_read.rs`'s.

/// An element type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dtype {
    /// float64, little-endian.
    F8,
    /// int64, little-endian.
    I8,
    /// Fixed-width unicode string of this many code points.
    U(usize),
}

impl Dtype {
    fn descr(self) -> String {
        match self {
            Dtype::F8 => "<f8".to_owned(),
            Dtype::I8 => "<i8".to_owned(),
            Dtype::U(n) => format!("<U{n}"),
        }
    }

    fn item_size(self) -> usize {
        match self {
            Dtype::F8 | Dtype::I8 => 8,
            Dtype::U(n) => 4 * n,
        }
    }
}

const MAGIC: &[u8] = b"\x93NUMPY\x01\x00";

/// The magic, version, header length and padded header dict for `dtype` and `shape`.
pub(crate) fn header(dtype: Dtype, shape: &[usize]) -> Vec<u8> {
    let shape_text = match shape {
        [n] => format!("({n},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape_text}, }}",
        dtype.descr()
    );
    // magic (8) + length (2) + dict + '\n' must be a multiple of 64.
    let unpadded = MAGIC.len() + 2 + dict.len() + 1;
    let padding = (64 - unpadded % 64) % 64;
    dict.extend(std::iter::repeat_n(' ', padding));
    dict.push('\n');
    let mut out = Vec::with_capacity(MAGIC.len() + 2 + dict.len());
    out.extend_from_slice(MAGIC);
    // The dict is at most a few hundred bytes, far below the v1.0 limit of 65535.
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

fn with_capacity(dtype: Dtype, shape: &[usize]) -> Vec<u8> {
    let items: usize = shape.iter().product();
    let mut out = header(dtype, shape);
    out.reserve(items * dtype.item_size());
    out
}

/// Replaces `out` with the header plus the 8-byte little-endian items of `data` (reusing
/// its allocation).
fn encode_8<T: Copy>(
    out: &mut Vec<u8>,
    dtype: Dtype,
    shape: &[usize],
    data: &[T],
    le: impl Fn(T) -> [u8; 8],
) {
    debug_assert_eq!(shape.iter().product::<usize>(), data.len());
    out.clear();
    out.extend_from_slice(&header(dtype, shape));
    let start = out.len();
    out.resize(start + 8 * data.len(), 0);
    for (dst, v) in out[start..].chunks_exact_mut(8).zip(data) {
        dst.copy_from_slice(&le(*v));
    }
}

/// A complete float64 file in `out`; `data.len()` must equal the product of `shape`.
pub(crate) fn encode_f64_into(out: &mut Vec<u8>, shape: &[usize], data: &[f64]) {
    encode_8(out, Dtype::F8, shape, data, f64::to_le_bytes);
}

/// A complete int64 file in `out`; `data.len()` must equal the product of `shape`.
pub(crate) fn encode_i64_into(out: &mut Vec<u8>, shape: &[usize], data: &[i64]) {
    encode_8(out, Dtype::I8, shape, data, i64::to_le_bytes);
}

/// A complete float64 file.
#[cfg(test)]
pub(crate) fn encode_f64(shape: &[usize], data: &[f64]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_f64_into(&mut out, shape, data);
    out
}

/// A complete int64 file.
pub(crate) fn encode_i64(shape: &[usize], data: &[i64]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_i64_into(&mut out, shape, data);
    out
}

/// A complete 1-D `<U{n}` file, `n` being the longest string in code points (at least 1).
pub(crate) fn encode_str(strings: &[String]) -> Vec<u8> {
    let width = strings
        .iter()
        .map(|s| s.chars().count())
        .max()
        .unwrap_or(0)
        .max(1);
    let mut out = with_capacity(Dtype::U(width), &[strings.len()]);
    for s in strings {
        let mut n = 0;
        for c in s.chars() {
            out.extend_from_slice(&u32::from(c).to_le_bytes());
            n += 1;
        }
        out.extend(std::iter::repeat_n(0u8, 4 * (width - n)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits a file into (header dict text, data bytes), checking the framing.
    fn split(file: &[u8]) -> (String, &[u8]) {
        assert_eq!(&file[..8], MAGIC);
        let len = usize::from(u16::from_le_bytes([file[8], file[9]]));
        let data_start = 10 + len;
        assert_eq!(data_start % 64, 0, "data must start at a multiple of 64");
        let dict = std::str::from_utf8(&file[10..data_start]).unwrap();
        assert!(dict.ends_with('\n'));
        (dict.trim_end().to_owned(), &file[data_start..])
    }

    #[test]
    fn float_matrix_matches_numpy_layout() {
        let data = [1.5, f64::NAN, -0.0, 3.0, 4.0, 5.0];
        let file = encode_f64(&[2, 3], &data);
        let (dict, body) = split(&file);
        assert_eq!(
            dict,
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }"
        );
        assert_eq!(body.len(), 48);
        let back: Vec<f64> = body
            .chunks(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(back[0], 1.5);
        assert!(back[1].is_nan());
        assert_eq!(back[3..], [3.0, 4.0, 5.0]);
        // 10 + 60 + 1 bytes round up to a 128-byte header, as numpy writes it.
        assert_eq!(file.len() - body.len(), 128);
    }

    #[test]
    fn one_dimensional_shape_has_trailing_comma() {
        let file = encode_i64(&[3], &[1, -2, 1_704_067_200_000]);
        let (dict, body) = split(&file);
        assert_eq!(
            dict,
            "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }"
        );
        assert_eq!(&body[8..16], &(-2i64).to_le_bytes());
        let empty = encode_i64(&[0], &[]);
        let (dict, body) = split(&empty);
        assert!(dict.contains("(0,)") && body.is_empty());
    }

    #[test]
    fn unicode_strings_are_utf32_padded() {
        let file = encode_str(&["BTCUSDT".to_owned(), "X".to_owned()]);
        let (dict, body) = split(&file);
        assert!(
            dict.contains("'descr': '<U7'") && dict.contains("(2,)"),
            "{dict}"
        );
        assert_eq!(body.len(), 2 * 7 * 4);
        assert_eq!(&body[0..4], &[b'B', 0, 0, 0]);
        assert_eq!(&body[28..32], &[b'X', 0, 0, 0]);
        assert!(body[32..].iter().all(|b| *b == 0));
        let (dict, _) = split(&encode_str(&[]));
        assert!(dict.contains("'<U1'") && dict.contains("(0,)"));
    }

    #[test]
    fn header_is_aligned_for_many_shapes() {
        for shape in [&[1usize][..], &[50, 1440], &[1_000_000, 86_400], &[7, 8, 9]] {
            let h = header(Dtype::F8, shape);
            assert_eq!(h.len() % 64, 0, "{shape:?}");
            assert_eq!(*h.last().unwrap(), b'\n');
        }
    }
}
