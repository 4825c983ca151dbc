//! Reads the `.npy` files of the test vectors: numpy format 1.0, little-endian, C order.

use std::fs;
use std::path::Path;

/// The contents of one `.npy` file.
pub struct Npy {
    descr: String,
    pub shape: Vec<usize>,
    data: Vec<u8>,
}

impl Npy {
    pub fn read(path: &Path) -> Result<Self, String> {
        let bytes = fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn parse(bytes: &[u8]) -> Result<Self, String> {
        let rest = bytes
            .strip_prefix(b"\x93NUMPY\x01\x00")
            .ok_or("not a numpy format 1.0 file")?;
        let (length, rest) = rest.split_first_chunk::<2>().ok_or("truncated header")?;
        let length = usize::from(u16::from_le_bytes(*length));
        if rest.len() < length {
            return Err("truncated header".into());
        }
        let (header, data) = rest.split_at(length);
        let header = std::str::from_utf8(header).map_err(|_| "header is not text")?;

        let descr = quoted(value_of(header, "descr")?).ok_or("descr is not a string")?;
        if !value_of(header, "fortran_order")?.starts_with("False") {
            return Err("Fortran order is not supported".into());
        }
        let dims = value_of(header, "shape")?
            .strip_prefix('(')
            .and_then(|tuple| tuple.split_once(')'))
            .ok_or("shape is not a tuple")?
            .0;
        let shape = dims
            .split(',')
            .map(str::trim)
            .filter(|dim| !dim.is_empty())
            .map(|dim| dim.parse().map_err(|_| format!("bad extent {dim:?}")))
            .collect::<Result<Vec<usize>, _>>()?;
        Ok(Self {
            descr: descr.to_owned(),
            shape,
            data: data.to_vec(),
        })
    }

    /// The raw little-endian elements, in C order; fails unless the file holds `descr` elements
    /// of `size` bytes, as many as its shape says.
    pub fn into_bytes(self, descr: &str, size: usize) -> Result<Vec<u8>, String> {
        if self.descr != descr {
            return Err(format!("holds {}, expected {descr}", self.descr));
        }
        let count: usize = self.shape.iter().product();
        if self.data.len() != count * size {
            return Err(format!(
                "has {} data bytes for shape {:?} of {}",
                self.data.len(),
                self.shape,
                self.descr
            ));
        }
        Ok(self.data)
    }

    /// The elements of a float64 file, in C order.
    pub fn into_f64(self) -> Result<Vec<f64>, String> {
        let bytes = self.into_bytes("<f8", 8)?;
        let value = |chunk: &[u8]| f64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        Ok(bytes.chunks_exact(8).map(value).collect())
    }
}

/// The text after `'key':` in a header dictionary.
fn value_of<'h>(header: &'h str, key: &str) -> Result<&'h str, String> {
    let pattern = format!("'{key}':");
    let start = header
        .find(&pattern)
        .ok_or_else(|| format!("header has no {key}"))?;
    Ok(header[start + pattern.len()..].trim_start())
}

/// The contents of the quoted string that `text` starts with.
fn quoted(text: &str) -> Option<&str> {
    let quote = text.chars().next().filter(|&c| c == '\'' || c == '"')?;
    text[1..].split(quote).next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        bytes.extend(data);
        bytes
    }

    #[test]
    fn reads_a_numpy_header() {
        let bytes = file(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 1), }   \n",
            &[0, 0, 0, 0, 0, 0, 240, 63, 0, 0, 0, 0, 0, 0, 0, 64],
        );
        let npy = Npy::parse(&bytes).unwrap();
        assert_eq!(npy.shape, [2, 1]);
        assert_eq!(npy.into_f64().unwrap(), [1.0, 2.0]);
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let one_d = "{'descr': '<u2', 'fortran_order': False, 'shape': (3,), }\n";
        let parse = |data: &[u8]| Npy::parse(&file(one_d, data)).unwrap();
        assert!(parse(&[0; 6]).into_bytes("<f2", 2).is_err());
        assert!(parse(&[0; 4]).into_bytes("<u2", 2).is_err());
        assert_eq!(parse(&[7; 6]).into_bytes("<u2", 2).unwrap(), [7; 6]);
        assert!(parse(&[0; 6]).into_f64().is_err());
        let fortran = "{'descr': '<f8', 'fortran_order': True, 'shape': (3,), }\n";
        assert!(Npy::parse(&file(fortran, &[0; 24])).is_err());
        assert!(Npy::parse(b"\x93NUMPY\x02\x00").is_err());
    }
}
