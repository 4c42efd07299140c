//! Image dimensions from a file's first bytes (JPEG and PNG), so that an uploaded photo can be
//! described as `photo` with one `photoSize`. Nothing is decoded; any input is safe.

/// How many leading bytes [`dimensions`] looks at, at most.
pub(crate) const HEAD_BYTES: usize = 64 * 1024;

/// Width and height of a JPEG or PNG image, if `head` (its first bytes) says them.
pub(crate) fn dimensions(head: &[u8]) -> Option<(u32, u32)> {
    png(head).or_else(|| jpeg(head))
}

fn be16(bytes: &[u8], at: usize) -> Option<u32> {
    let pair = bytes.get(at..at + 2)?;
    Some(u32::from(u16::from_be_bytes([
        *pair.first()?,
        *pair.get(1)?,
    ])))
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let quad: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_be_bytes(quad))
}

fn png(head: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if !head.starts_with(SIGNATURE) || head.get(12..16)? != b"IHDR" {
        return None;
    }
    let (width, height) = (be32(head, 16)?, be32(head, 20)?);
    (width > 0 && height > 0).then_some((width, height))
}

fn jpeg(head: &[u8]) -> Option<(u32, u32)> {
    if head.get(..2)? != [0xff, 0xd8] {
        return None;
    }
    let mut at = 2;
    loop {
        if *head.get(at)? != 0xff {
            return None;
        }
        let marker = *head.get(at + 1)?;
        match marker {
            // Fill bytes before a marker.
            0xff => at += 1,
            // Markers without a length.
            0x01 | 0xd0..=0xd7 => at += 2,
            // Start of frame (all but DHT, JPG and DAC): precision, height, width.
            0xc0..=0xcf if !matches!(marker, 0xc4 | 0xc8 | 0xcc) => {
                let (height, width) = (be16(head, at + 5)?, be16(head, at + 7)?);
                return (width > 0 && height > 0).then_some((width, height));
            }
            // End of image or start of scan before any frame header: no size.
            0xd9 | 0xda => return None,
            _ => at += 2 + usize::try_from(be16(head, at + 2)?).ok()?,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn png_and_jpeg_headers() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&640u32.to_be_bytes());
        png.extend_from_slice(&480u32.to_be_bytes());
        assert_eq!(dimensions(&png), Some((640, 480)));

        // SOI, an APP0 segment of 16 bytes, then SOF0 with height 300 and width 400.
        let mut jpeg = vec![0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10];
        jpeg.extend_from_slice(&[0u8; 14]);
        jpeg.extend_from_slice(&[0xff, 0xc0, 0x00, 0x11, 0x08, 0x01, 0x2c, 0x01, 0x90]);
        assert_eq!(dimensions(&jpeg), Some((400, 300)));
    }

    #[test]
    fn anything_else_is_none_and_never_panics() {
        assert_eq!(dimensions(b""), None);
        assert_eq!(dimensions(b"GIF89a"), None);
        assert_eq!(dimensions(&[0xff, 0xd8, 0xff]), None);
        assert_eq!(dimensions(&[0xff, 0xd8, 0xff, 0xe0, 0xff, 0xff]), None);
        for len in 0..64 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
            let _ = dimensions(&bytes);
            let mut jpeg = vec![0xff, 0xd8];
            jpeg.extend_from_slice(&bytes);
            let _ = dimensions(&jpeg);
        }
    }
}
