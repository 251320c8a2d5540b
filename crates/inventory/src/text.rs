//! Bytes → numbered lines of text for the inventory importers: BOMs, UTF-16 with and without
//! a BOM (also after an ASCII prefix), UTF-8, and the legacy code pages Windows tools write.

use encoding_rs::Encoding;

/// A legacy (non-Unicode) code page a capture may be written in. Which one a file uses is not
/// written anywhere in it: the importer that knows what the text should say picks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Legacy {
    /// cmd.exe's OEM code page for Western European languages (`chcp 850`).
    Cp850,
    /// The same languages' ANSI code page, what PowerShell 5 `Out-File -Encoding Default` writes.
    Windows1252,
    /// Simplified Chinese, both OEM and ANSI (code page 936).
    Gbk,
    /// Russian OEM code page.
    Cp866,
    /// Russian ANSI code page.
    Windows1251,
}

impl Legacy {
    /// Every legacy code page, in the order they are tried.
    pub const ALL: &'static [Legacy] = &[
        Legacy::Cp850,
        Legacy::Windows1252,
        Legacy::Gbk,
        Legacy::Cp866,
        Legacy::Windows1251,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Legacy::Cp850 => "cp850",
            Legacy::Windows1252 => "windows-1252",
            Legacy::Gbk => "GBK",
            Legacy::Cp866 => "cp866",
            Legacy::Windows1251 => "windows-1251",
        }
    }

    /// Single-byte code pages decode every byte; only GBK can meet an invalid sequence.
    fn single_byte(self) -> bool {
        self != Legacy::Gbk
    }

    /// Decodes one line; `None` when it holds a sequence the code page does not define.
    fn decode(self, bytes: &[u8]) -> Option<String> {
        let encoding: &'static Encoding = match self {
            Legacy::Cp850 => {
                return Some(oem_cp::decode_string_complete_table(
                    bytes,
                    &oem_cp::code_table::DECODING_TABLE_CP850,
                ))
            }
            Legacy::Windows1252 => encoding_rs::WINDOWS_1252,
            Legacy::Gbk => encoding_rs::GBK,
            Legacy::Cp866 => encoding_rs::IBM866,
            Legacy::Windows1251 => encoding_rs::WINDOWS_1251,
        };
        encoding
            .decode_without_bom_handling_and_without_replacement(bytes)
            .map(|s| s.into_owned())
    }
}

/// A decoded file: its lines (line `n` is `lines[n - 1]`, without line terminators) and the
/// encoding they were read in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub lines: Vec<String>,
    pub encoding: &'static str,
}

/// A decoding failure at a 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextError {
    pub line: usize,
    pub message: String,
}

impl TextError {
    fn new(line: usize, message: impl Into<String>) -> Self {
        TextError {
            line,
            message: message.into(),
        }
    }
}

/// Splits on `\n`, dropping every trailing `\r` (wmic on XP ends lines with `\r\r\n`).
fn split_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .split('\n')
        .map(|l| l.trim_end_matches('\r').to_string())
        .collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
}

/// Splits raw bytes of an ASCII-compatible encoding into lines (GBK trail bytes are never
/// `\n`, so this is safe for every code page here).
fn split_byte_lines(bytes: &[u8]) -> Vec<&[u8]> {
    let mut lines: Vec<&[u8]> = bytes
        .split(|&b| b == b'\n')
        .map(|l| {
            let mut end = l.len();
            while end > 0 && l[end - 1] == b'\r' {
                end -= 1;
            }
            &l[..end]
        })
        .collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
}

/// The 1-based line holding byte `offset` of an ASCII-compatible buffer.
fn line_of(bytes: &[u8], offset: usize) -> usize {
    bytes[..offset.min(bytes.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Strict UTF-8; the error names the line of the first invalid sequence.
fn utf8(bytes: &[u8], line_offset: usize) -> Result<String, TextError> {
    std::str::from_utf8(bytes).map(str::to_string).map_err(|e| {
        TextError::new(
            line_offset + line_of(bytes, e.valid_up_to()) - 1,
            "invalid UTF-8: the file is mis-encoded",
        )
    })
}

/// Strict UTF-16; `prefix_lines` is how many line breaks precede it in the file.
fn utf16(bytes: &[u8], little_endian: bool, prefix_lines: usize) -> Result<String, TextError> {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| {
            if little_endian {
                u16::from_le_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], c[1]])
            }
        })
        .collect();
    let mut out = String::with_capacity(units.len());
    let mut line = prefix_lines + 1;
    for c in char::decode_utf16(units.iter().copied()) {
        match c {
            Ok(c) => {
                if c == '\n' {
                    line += 1;
                }
                out.push(c);
            }
            Err(_) => {
                return Err(TextError::new(
                    line,
                    "invalid UTF-16 (an unpaired surrogate): the file is mis-encoded",
                ))
            }
        }
    }
    if bytes.len() % 2 == 1 {
        return Err(TextError::new(
            line,
            "the UTF-16 text ends in the middle of a character: the file is truncated",
        ));
    }
    Ok(out)
}

/// Whether the bytes hold at least one well-formed multi-byte UTF-8 sequence: a file in a
/// single-byte code page practically never does, a UTF-8 file with a few bad bytes does.
fn has_utf8_sequences(bytes: &[u8]) -> bool {
    let mut rest = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => return s.bytes().any(|b| b >= 0x80),
            Err(e) => {
                let valid = &rest[..e.valid_up_to()];
                if valid.iter().any(|&b| b >= 0x80) {
                    return true;
                }
                rest = &rest
                    [e.valid_up_to() + e.error_len().unwrap_or(rest.len() - e.valid_up_to())..];
            }
        }
    }
    false
}

/// Decodes a file whose Unicode form is known from its bytes (BOM, UTF-16 NULs, valid UTF-8).
/// `Ok(None)` means it is in some legacy code page.
pub fn decode_unicode(bytes: &[u8]) -> Result<Option<Text>, TextError> {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return Ok(Some(Text {
            lines: split_lines(&utf8(rest, 1)?),
            encoding: "UTF-8",
        }));
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        return Ok(Some(Text {
            lines: split_lines(&utf16(rest, true, 0)?),
            encoding: "UTF-16LE",
        }));
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        return Ok(Some(Text {
            lines: split_lines(&utf16(rest, false, 0)?),
            encoding: "UTF-16BE",
        }));
    }
    if let Some(first_nul) = bytes.iter().position(|&b| b == 0) {
        // UTF-16 without a BOM. On XP, `wmic … > file` writes "Please wait while WMIC is
        // being installed." in ASCII before switching to UTF-16LE: the UTF-16 part starts
        // at the character before the first NUL.
        if first_nul == 0 {
            return Ok(Some(Text {
                lines: split_lines(&utf16(bytes, false, 0)?),
                encoding: "UTF-16BE",
            }));
        }
        let start = first_nul - 1;
        let prefix = &bytes[..start];
        let prefix_text = utf8(prefix, 1)?;
        let prefix_lines = prefix.iter().filter(|&&b| b == b'\n').count();
        let rest = utf16(&bytes[start..], true, prefix_lines)?;
        let encoding = if prefix.is_empty() {
            "UTF-16LE"
        } else {
            "ASCII, then UTF-16LE"
        };
        return Ok(Some(Text {
            lines: split_lines(&(prefix_text + &rest)),
            encoding,
        }));
    }
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(Some(Text {
            lines: split_lines(s),
            encoding: if bytes.is_ascii() { "ASCII" } else { "UTF-8" },
        })),
        Err(_) => Ok(None),
    }
}

/// Decodes a file, trying the legacy code pages when it is not Unicode. `score` rates how
/// much of the decoded text the importer recognises (0: none); the best-rated code page wins,
/// the earlier one on ties. A file no code page makes recognisable is returned in the first
/// code page, for the importer to report what it does not recognise.
pub fn decode(bytes: &[u8], score: impl Fn(&[String]) -> usize) -> Result<Text, TextError> {
    if let Some(text) = decode_unicode(bytes)? {
        return Ok(text);
    }
    let byte_lines = split_byte_lines(bytes);
    let mut best: Option<(usize, Legacy, Vec<String>, Option<usize>)> = None;
    for &legacy in Legacy::ALL {
        let mut first_error = None;
        let lines: Vec<String> = byte_lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                legacy.decode(l).unwrap_or_else(|| {
                    first_error.get_or_insert(i + 1);
                    String::from_utf8_lossy(l).into_owned()
                })
            })
            .collect();
        let s = score(&lines);
        if best.as_ref().is_none_or(|(b, ..)| s > *b) {
            best = Some((s, legacy, lines, first_error));
        }
    }
    let Some((s, legacy, lines, first_error)) = best else {
        return Ok(Text {
            lines: Vec::new(),
            encoding: "ASCII",
        });
    };
    if let Some(line) = first_error {
        return Err(TextError::new(
            line,
            format!(
                "invalid {} byte sequence: the file is mis-encoded",
                legacy.name()
            ),
        ));
    }
    if s > 0 && legacy.single_byte() && has_utf8_sequences(bytes) {
        // Mostly UTF-8 with some bytes that are not: a damaged or concatenated file.
        let bad = std::str::from_utf8(bytes)
            .err()
            .map_or(1, |e| line_of(bytes, e.valid_up_to()));
        return Err(TextError::new(
            bad,
            "invalid UTF-8 in a file that is otherwise UTF-8: the file is mis-encoded",
        ));
    }
    Ok(Text {
        lines,
        encoding: legacy.name(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16le(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
    }

    #[test]
    fn boms_and_line_ends() {
        let mut b = vec![0xFF, 0xFE];
        b.extend(utf16le("a\r\nb\r\r\n"));
        let t = decode(&b, |_| 1).unwrap();
        assert_eq!(
            (t.lines, t.encoding),
            (vec!["a".into(), "b".into()], "UTF-16LE")
        );
        let t = decode(b"\xEF\xBB\xBFx\ny", |_| 1).unwrap();
        assert_eq!(t.lines, vec!["x", "y"]);
    }

    #[test]
    fn ascii_prefix_then_utf16() {
        let mut b = b"Please wait.".to_vec();
        b.extend(utf16le("Caption  HotFixID\r\nx  KB123456\r\n"));
        let t = decode(&b, |_| 1).unwrap();
        assert_eq!(t.encoding, "ASCII, then UTF-16LE");
        assert_eq!(
            t.lines,
            vec!["Please wait.Caption  HotFixID", "x  KB123456"]
        );
    }

    #[test]
    fn truncated_and_broken_unicode_name_the_line() {
        let mut b = vec![0xFF, 0xFE];
        b.extend(utf16le("a\r\nb\r\nc"));
        b.push(0x41);
        assert_eq!(decode(&b, |_| 1).unwrap_err().line, 3);
        let mut b = vec![0xFF, 0xFE];
        b.extend(utf16le("a\r\n"));
        b.extend([0x00, 0xD8, 0x41, 0x00]);
        assert_eq!(decode(&b, |_| 1).unwrap_err().line, 2);
        assert_eq!(
            decode(b"\xEF\xBB\xBFok\nbad \xFF\n", |_| 1)
                .unwrap_err()
                .line,
            2
        );
    }

    #[test]
    fn legacy_code_pages_are_chosen_by_score() {
        // "Versión" in cp850 (ó = 0xA2) and in windows-1252 (ó = 0xF3).
        let want = |lines: &[String]| usize::from(lines.iter().any(|l| l.contains("Versión")));
        assert_eq!(decode(b"Versi\xA2n: 1\n", want).unwrap().encoding, "cp850");
        assert_eq!(
            decode(b"Versi\xF3n: 1\n", want).unwrap().encoding,
            "windows-1252"
        );
        // GBK "主机名" (host name).
        let zh = |lines: &[String]| usize::from(lines.iter().any(|l| l.starts_with("主机名")));
        let t = decode(b"\xD6\xF7\xBB\xFA\xC3\xFB: PC\n", zh).unwrap();
        assert_eq!((t.encoding, t.lines[0].as_str()), ("GBK", "主机名: PC"));
    }

    #[test]
    fn a_utf8_file_with_a_bad_byte_is_mis_encoded() {
        let e = decode(
            "Domäne: X\nHost: \u{e9}\n"
                .as_bytes()
                .iter()
                .copied()
                .chain(*b"a\xFF\n")
                .collect::<Vec<_>>()
                .as_slice(),
            |_| 1,
        )
        .unwrap_err();
        assert_eq!(e.line, 3);
    }
}
