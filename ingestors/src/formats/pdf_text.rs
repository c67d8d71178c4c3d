//! Page text from a PDF content stream, laid out by position. `lopdf` decodes the streams and
//! the fonts' encodings; this walker follows the text and graphics matrices so that a jump to
//! a new baseline becomes a line break and a gap on the same baseline becomes a space (many
//! producers position each word or line separately), and it descends into Form XObjects,
//! where gazettes and forms often keep their text.

use std::collections::HashMap;

use lopdf::content::Content;
use lopdf::Encoding;
use lopdf::{Dictionary, Document, Object, ObjectId};

/// Row-vector affine matrix `[a b c d e f]`, as PDF writes them.
#[derive(Clone, Copy, Debug)]
struct Matrix([f32; 6]);

impl Matrix {
    const IDENTITY: Matrix = Matrix([1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);

    fn translate(tx: f32, ty: f32) -> Matrix {
        Matrix([1.0, 0.0, 0.0, 1.0, tx, ty])
    }

    /// `self × other`: apply `self` first, then `other`.
    fn then(self, other: Matrix) -> Matrix {
        let [a1, b1, c1, d1, e1, f1] = self.0;
        let [a2, b2, c2, d2, e2, f2] = other.0;
        Matrix([
            a1 * a2 + b1 * c2,
            a1 * b2 + b1 * d2,
            c1 * a2 + d1 * c2,
            c1 * b2 + d1 * d2,
            e1 * a2 + f1 * c2 + e2,
            e1 * b2 + f1 * d2 + f2,
        ])
    }

    fn from_operands(ops: &[Object]) -> Option<Matrix> {
        let v: Vec<f32> = ops.iter().filter_map(num).collect();
        (v.len() == 6).then(|| Matrix([v[0], v[1], v[2], v[3], v[4], v[5]]))
    }
}

fn num(o: &Object) -> Option<f32> {
    match o {
        Object::Integer(i) => Some(*i as f32),
        Object::Real(r) => Some(*r),
        _ => None,
    }
}

/// What the walker needs of a font: how to decode its codes and how wide each code is.
struct Font<'a> {
    encoding: Option<Encoding<'a>>,
    two_byte: bool,
    widths: HashMap<u32, f32>,
    default_width: f32,
}

impl<'a> Font<'a> {
    fn load(doc: &'a Document, dict: &'a Dictionary) -> Font<'a> {
        let subtype = dict
            .get(b"Subtype")
            .and_then(Object::as_name)
            .unwrap_or(b"");
        let two_byte = subtype == b"Type0";
        let mut widths = HashMap::new();
        let mut default_width = 500.0;
        let deref = |o: &'a Object| doc.dereference(o).map(|(_, o)| o).ok();
        if two_byte {
            default_width = 1000.0;
            let descendant = dict
                .get(b"DescendantFonts")
                .ok()
                .and_then(deref)
                .and_then(|o| o.as_array().ok())
                .and_then(|a| a.first())
                .and_then(deref)
                .and_then(|o| o.as_dict().ok());
            if let Some(d) = descendant {
                if let Some(dw) = d.get(b"DW").ok().and_then(num) {
                    default_width = dw;
                }
                if let Some(w) = d
                    .get(b"W")
                    .ok()
                    .and_then(deref)
                    .and_then(|o| o.as_array().ok())
                {
                    let mut i = 0;
                    while i < w.len() {
                        let Some(first) = num(&w[i]) else { break };
                        let next = w.get(i + 1).and_then(deref);
                        match next {
                            Some(Object::Array(ws)) => {
                                for (k, wv) in ws.iter().enumerate() {
                                    if let Some(v) = num(wv) {
                                        widths.insert(first as u32 + k as u32, v);
                                    }
                                }
                                i += 2;
                            }
                            Some(last) => {
                                let (Some(last), Some(v)) = (num(last), w.get(i + 2).and_then(num))
                                else {
                                    break;
                                };
                                for code in first as u32..=last as u32 {
                                    widths.insert(code, v);
                                }
                                i += 3;
                            }
                            None => break,
                        }
                    }
                }
            }
        } else {
            let first = dict.get(b"FirstChar").ok().and_then(num).unwrap_or(0.0) as u32;
            if let Some(ws) = dict
                .get(b"Widths")
                .ok()
                .and_then(deref)
                .and_then(|o| o.as_array().ok())
            {
                for (k, w) in ws.iter().enumerate() {
                    if let Some(v) = deref(w).and_then(num) {
                        widths.insert(first + k as u32, v);
                    }
                }
            }
            if let Some(mw) = dict
                .get(b"FontDescriptor")
                .ok()
                .and_then(deref)
                .and_then(|o| o.as_dict().ok())
                .and_then(|fd| fd.get(b"MissingWidth").ok().and_then(num))
            {
                default_width = mw;
            }
        }
        Font {
            encoding: dict.get_font_encoding(doc).ok(),
            two_byte,
            widths,
            default_width,
        }
    }

    /// Codes in a string and their widths in text-space units (thousandths of the size).
    fn codes(&self, bytes: &[u8]) -> Vec<(u32, f32)> {
        let code_of = |c: u32| {
            (
                c,
                self.widths.get(&c).copied().unwrap_or(self.default_width),
            )
        };
        if self.two_byte {
            bytes
                .chunks(2)
                .map(|p| code_of(((p[0] as u32) << 8) | *p.get(1).unwrap_or(&0) as u32))
                .collect()
        } else {
            bytes.iter().map(|&b| code_of(b as u32)).collect()
        }
    }
}

#[derive(Clone, Copy)]
struct TextState {
    ctm: Matrix,
    char_spacing: f32,
    word_spacing: f32,
    scale: f32,
    leading: f32,
    size: f32,
    rise: f32,
}

struct Walker<'a> {
    doc: &'a Document,
    fonts: HashMap<ObjectId, Font<'a>>,
    out: String,
    last: Option<(f32, f32, f32)>, // (x end, baseline y, size) in device space
    depth: usize,
}

/// Looks a name up in a resource category (`Font`, `XObject`) of the resource dictionaries.
fn lookup<'a>(
    doc: &'a Document,
    resources: &[&'a Dictionary],
    category: &[u8],
    name: &[u8],
) -> Option<(Option<ObjectId>, &'a Object)> {
    resources.iter().find_map(|r| {
        let cat = doc
            .dereference(r.get(category).ok()?)
            .ok()?
            .1
            .as_dict()
            .ok()?;
        let obj = cat.get(name).ok()?;
        let id = obj.as_reference().ok();
        Some((id, doc.dereference(obj).ok()?.1))
    })
}

impl<'a> Walker<'a> {
    fn emit(&mut self, text: &str, x: f32, y: f32, x_end: f32, size: f32) {
        if text.is_empty() {
            return;
        }
        if let Some((last_x, last_y, last_size)) = self.last {
            let tolerance = 0.5 * size.max(last_size).max(1.0);
            if (y - last_y).abs() > tolerance {
                if !self.out.ends_with('\n') {
                    self.out.push('\n');
                }
            } else if x - last_x > 0.18 * size.max(1.0)
                && !self.out.ends_with([' ', '\n'])
                && !text.starts_with(' ')
            {
                self.out.push(' ');
            }
        }
        self.out.push_str(text);
        self.last = Some((x_end, y, size));
    }

    fn run(&mut self, content: &[u8], resources: &[&'a Dictionary], ctm: Matrix) {
        self.depth += 1;
        if self.depth > 8 {
            return;
        }
        let Ok(content) = Content::decode(content) else {
            return;
        };
        let mut stack: Vec<TextState> = Vec::new();
        let mut st = TextState {
            ctm,
            char_spacing: 0.0,
            word_spacing: 0.0,
            scale: 1.0,
            leading: 0.0,
            size: 0.0,
            rise: 0.0,
        };
        let mut font: Option<ObjectId> = None;
        let mut inline_font: Option<Font<'a>> = None;
        let (mut tm, mut tlm) = (Matrix::IDENTITY, Matrix::IDENTITY);
        for op in &content.operations {
            let o = &op.operands;
            match op.operator.as_str() {
                "q" => stack.push(st),
                "Q" => {
                    if let Some(s) = stack.pop() {
                        st = s;
                    }
                }
                "cm" => {
                    if let Some(m) = Matrix::from_operands(o) {
                        st.ctm = m.then(st.ctm);
                    }
                }
                "BT" => {
                    tm = Matrix::IDENTITY;
                    tlm = Matrix::IDENTITY;
                }
                "Tf" => {
                    st.size = o.get(1).and_then(num).unwrap_or(st.size);
                    let name = o.first().and_then(|n| n.as_name().ok()).unwrap_or(b"");
                    match lookup(self.doc, resources, b"Font", name) {
                        Some((Some(id), obj)) => {
                            if let Ok(d) = obj.as_dict() {
                                let doc = self.doc;
                                self.fonts.entry(id).or_insert_with(|| Font::load(doc, d));
                                font = Some(id);
                                inline_font = None;
                            }
                        }
                        Some((None, obj)) => {
                            font = None;
                            inline_font = obj.as_dict().ok().map(|d| Font::load(self.doc, d));
                        }
                        None => {
                            font = None;
                            inline_font = None;
                        }
                    }
                }
                "Tc" => st.char_spacing = o.first().and_then(num).unwrap_or(0.0),
                "Tw" => st.word_spacing = o.first().and_then(num).unwrap_or(0.0),
                "Tz" => st.scale = o.first().and_then(num).unwrap_or(100.0) / 100.0,
                "TL" => st.leading = o.first().and_then(num).unwrap_or(0.0),
                "Ts" => st.rise = o.first().and_then(num).unwrap_or(0.0),
                "Td" | "TD" => {
                    let (tx, ty) = (
                        o.first().and_then(num).unwrap_or(0.0),
                        o.get(1).and_then(num).unwrap_or(0.0),
                    );
                    if op.operator == "TD" {
                        st.leading = -ty;
                    }
                    tlm = Matrix::translate(tx, ty).then(tlm);
                    tm = tlm;
                }
                "Tm" => {
                    if let Some(m) = Matrix::from_operands(o) {
                        tlm = m;
                        tm = m;
                    }
                }
                "T*" => {
                    tlm = Matrix::translate(0.0, -st.leading).then(tlm);
                    tm = tlm;
                }
                "Tj" | "TJ" | "'" | "\"" => {
                    if op.operator != "Tj" && op.operator != "TJ" {
                        tlm = Matrix::translate(0.0, -st.leading).then(tlm);
                        tm = tlm;
                    }
                    let items: Vec<&Object> = match op.operator.as_str() {
                        "TJ" => o
                            .first()
                            .and_then(|a| a.as_array().ok())
                            .map(|a| a.iter().collect())
                            .unwrap_or_default(),
                        "\"" => o.get(2).into_iter().collect(),
                        _ => o.first().into_iter().collect(),
                    };
                    let f = match (font, &inline_font) {
                        (Some(id), _) => self.fonts.get(&id),
                        (None, Some(f)) => Some(f),
                        _ => None,
                    };
                    let Some(f) = f else { continue };
                    let mut pieces: Vec<(String, f32, f32, f32, f32)> = Vec::new();
                    for item in items {
                        match item {
                            Object::String(bytes, _) => {
                                let trm =
                                    Matrix([st.size * st.scale, 0.0, 0.0, st.size, 0.0, st.rise])
                                        .then(tm)
                                        .then(st.ctm);
                                let (x, y) = (trm.0[4], trm.0[5]);
                                let size = (trm.0[2].powi(2) + trm.0[3].powi(2)).sqrt();
                                let mut text = String::new();
                                if let Some(enc) = &f.encoding {
                                    let _ = enc.write_to_string(bytes, &mut text);
                                }
                                for (code, w) in f.codes(bytes) {
                                    let space = if !f.two_byte && code == 32 {
                                        st.word_spacing
                                    } else {
                                        0.0
                                    };
                                    let tx =
                                        (w / 1000.0 * st.size + st.char_spacing + space) * st.scale;
                                    tm = Matrix::translate(tx, 0.0).then(tm);
                                }
                                let end = Matrix::translate(0.0, 0.0).then(tm).then(st.ctm);
                                pieces.push((text, x, y, end.0[4], size));
                            }
                            other => {
                                if let Some(n) = num(other) {
                                    tm = Matrix::translate(-n / 1000.0 * st.size * st.scale, 0.0)
                                        .then(tm);
                                }
                            }
                        }
                    }
                    for (text, x, y, x_end, size) in pieces {
                        let text: String = text
                            .chars()
                            .filter(|c| *c != '\u{0}' && *c != '\u{fffd}')
                            .collect();
                        self.emit(&text, x, y, x_end, size);
                    }
                }
                "Do" => {
                    let name = o.first().and_then(|n| n.as_name().ok()).unwrap_or(b"");
                    let Some((_, Object::Stream(s))) =
                        lookup(self.doc, resources, b"XObject", name)
                    else {
                        continue;
                    };
                    if s.dict.get(b"Subtype").and_then(Object::as_name).ok() != Some(b"Form") {
                        continue;
                    }
                    let Ok(data) = s
                        .decompressed_content()
                        .or_else(|_| Ok::<_, lopdf::Error>(s.content.clone()))
                    else {
                        continue;
                    };
                    let matrix = s
                        .dict
                        .get(b"Matrix")
                        .ok()
                        .and_then(|m| m.as_array().ok())
                        .and_then(|a| Matrix::from_operands(a))
                        .unwrap_or(Matrix::IDENTITY);
                    let mut inner: Vec<&'a Dictionary> = Vec::new();
                    if let Some(r) = s
                        .dict
                        .get(b"Resources")
                        .ok()
                        .and_then(|r| self.doc.dereference(r).ok())
                        .and_then(|(_, r)| r.as_dict().ok())
                    {
                        inner.push(r);
                    }
                    inner.extend_from_slice(resources);
                    self.run(&data, &inner, matrix.then(st.ctm));
                }
                _ => {}
            }
        }
        self.depth -= 1;
    }
}

/// The text of one page, lines in content order.
pub(crate) fn page_text(doc: &Document, page_id: ObjectId) -> Result<String, lopdf::Error> {
    let (direct, ids) = doc.get_page_resources(page_id)?;
    let mut resources: Vec<&Dictionary> = direct.into_iter().collect();
    resources.extend(ids.iter().filter_map(|id| doc.get_dictionary(*id).ok()));
    let content = doc.get_page_content(page_id);
    let mut w = Walker {
        doc,
        fonts: HashMap::new(),
        out: String::new(),
        last: None,
        depth: 0,
    };
    w.run(&content, &resources, Matrix::IDENTITY);
    Ok(w.out)
}
