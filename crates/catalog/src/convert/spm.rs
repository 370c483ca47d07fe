//! A minimal reader of SentencePiece's `tokenizer.model` (a protobuf `ModelProto`): the pieces
//! with their scores and types, and the normalizer's `add_dummy_prefix`. Only the fields GGUF
//! needs are decoded; everything else is skipped by wire type.

/// One vocabulary entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub piece: String,
    pub score: f32,
    /// SentencePiece's type, numbered like GGUF's token types (1 normal ... 6 byte).
    pub kind: i32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SpmModel {
    pub pieces: Vec<Piece>,
    pub add_dummy_prefix: bool,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or("truncated field")?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Next `(field, wire type)`.
    fn key(&mut self) -> Result<(u64, u64), String> {
        let k = self.varint()?;
        Ok((k >> 3, k & 7))
    }

    fn skip(&mut self, wire: u64) -> Result<(), String> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.bytes(8).map(|_| ()),
            2 => {
                let n = self.varint()? as usize;
                self.bytes(n).map(|_| ())
            }
            5 => self.bytes(4).map(|_| ()),
            w => Err(format!("unsupported wire type {w}")),
        }
    }
}

fn parse_piece(buf: &[u8]) -> Result<Piece, String> {
    let mut r = Reader { buf, pos: 0 };
    let mut p = Piece {
        piece: String::new(),
        score: 0.0,
        kind: 1,
    };
    while !r.done() {
        match r.key()? {
            (1, 2) => {
                let n = r.varint()? as usize;
                p.piece =
                    String::from_utf8(r.bytes(n)?.to_vec()).map_err(|_| "piece is not UTF-8")?;
            }
            (2, 5) => {
                let b = r.bytes(4)?;
                p.score = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
            (3, 0) => p.kind = r.varint()? as i32,
            (_, w) => r.skip(w)?,
        }
    }
    Ok(p)
}

pub fn parse(buf: &[u8]) -> Result<SpmModel, String> {
    let mut r = Reader { buf, pos: 0 };
    let mut m = SpmModel {
        pieces: Vec::new(),
        add_dummy_prefix: true,
    };
    while !r.done() {
        match r.key()? {
            (1, 2) => {
                let n = r.varint()? as usize;
                m.pieces.push(parse_piece(r.bytes(n)?)?);
            }
            (3, 2) => {
                // NormalizerSpec: field 3 is add_dummy_prefix.
                let n = r.varint()? as usize;
                let mut nr = Reader {
                    buf: r.bytes(n)?,
                    pos: 0,
                };
                while !nr.done() {
                    match nr.key()? {
                        (3, 0) => m.add_dummy_prefix = nr.varint()? != 0,
                        (_, w) => nr.skip(w)?,
                    }
                }
            }
            (_, w) => r.skip(w)?,
        }
    }
    if m.pieces.is_empty() {
        return Err("no pieces: not a SentencePiece model".into());
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn piece(text: &str, score: f32, kind: u64) -> Vec<u8> {
        let mut p = vec![0x0a];
        varint(text.len() as u64, &mut p);
        p.extend_from_slice(text.as_bytes());
        p.push(0x15);
        p.extend_from_slice(&score.to_le_bytes());
        p.push(0x18);
        varint(kind, &mut p);
        p
    }

    #[test]
    fn reads_pieces_and_normalizer() {
        let mut m = Vec::new();
        for (t, s, k) in [
            ("<unk>", 0.0, 2),
            ("<0x0A>", 0.0, 6),
            ("\u{2581}the", -3.5, 1),
        ] {
            let p = piece(t, s, k);
            m.push(0x0a);
            varint(p.len() as u64, &mut m);
            m.extend(p);
        }
        // trainer_spec (field 2) with something in it, skipped.
        m.extend([0x12, 0x02, 0x18, 0x02]);
        // normalizer_spec with add_dummy_prefix = false.
        m.extend([0x1a, 0x02, 0x18, 0x00]);
        let parsed = parse(&m).unwrap();
        assert_eq!(parsed.pieces.len(), 3);
        assert_eq!(
            parsed.pieces[2],
            Piece {
                piece: "\u{2581}the".into(),
                score: -3.5,
                kind: 1
            }
        );
        assert_eq!(parsed.pieces[1].kind, 6);
        assert!(!parsed.add_dummy_prefix);
        assert!(parse(&[0x0a, 0x05, 0x01]).is_err());
    }
}
