//! The index schema and how a passage becomes a tantivy document.

use cabildo_core::{Language, Passage};
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, STORED,
    STRING,
};
use tantivy::TantivyDocument;

use crate::analysis::analyzer_name;

/// Handles to the schema's fields.
#[derive(Clone, Copy)]
pub(crate) struct Fields {
    pub id: Field,
    pub norm_id: Field,
    /// Passage text, per language.
    pub text: [Field; 3],
    /// Norm title, breadcrumb and provision label, per language.
    pub head: [Field; 3],
    pub jurisdiction: Field,
    pub kind: Field,
    pub access: Field,
    pub tenant: Field,
    pub valid_from: Field,
    pub valid_to: Field,
    pub stored: Field,
}

pub(crate) fn lang_slot(l: Language) -> usize {
    match l {
        Language::Es => 0,
        Language::Pt => 1,
        Language::En => 2,
    }
}

pub(crate) const LANGS: [Language; 3] = [Language::Es, Language::Pt, Language::En];

fn text_options(lang: Language) -> TextOptions {
    TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(analyzer_name(lang))
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    )
}

pub(crate) fn build() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let id = b.add_text_field("id", STRING | STORED);
    let norm_id = b.add_text_field("norm_id", STRING);
    let text = LANGS.map(|l| b.add_text_field(&format!("text_{}", l.code()), text_options(l)));
    let head = LANGS.map(|l| b.add_text_field(&format!("head_{}", l.code()), text_options(l)));
    let jurisdiction = b.add_text_field("jurisdiction", STRING);
    let kind = b.add_text_field("kind", STRING);
    let num = NumericOptions::default().set_indexed().set_fast();
    let access = b.add_u64_field("access", num.clone());
    let tenant = b.add_text_field("tenant", STRING);
    let valid_from = b.add_i64_field("valid_from", num.clone());
    let valid_to = b.add_i64_field("valid_to", num);
    let stored = b.add_text_field("passage", STORED);
    let fields = Fields {
        id,
        norm_id,
        text,
        head,
        jurisdiction,
        kind,
        access,
        tenant,
        valid_from,
        valid_to,
        stored,
    };
    (b.build(), fields)
}

/// Days since 1970-01-01, the unit of the validity fields.
pub(crate) fn day_number(d: chrono::NaiveDate) -> i64 {
    (d - chrono::NaiveDate::default()).num_days()
}

pub(crate) fn document(f: &Fields, p: &Passage) -> TantivyDocument {
    let mut doc = TantivyDocument::default();
    let slot = lang_slot(p.language);
    doc.add_text(f.id, &p.id);
    doc.add_text(f.norm_id, &p.norm_id);
    doc.add_text(f.text[slot], &p.text);
    doc.add_text(f.head[slot], p.breadcrumb.join(" › "));
    doc.add_text(f.jurisdiction, &p.jurisdiction.country);
    doc.add_text(f.kind, p.kind.as_str());
    doc.add_u64(f.access, p.access as u64);
    doc.add_text(f.tenant, p.tenant.as_deref().unwrap_or(""));
    doc.add_i64(f.valid_from, p.valid_from.map_or(i64::MIN, day_number));
    doc.add_i64(f.valid_to, p.valid_to.map_or(i64::MAX, day_number));
    doc.add_text(
        f.stored,
        serde_json::to_string(p).unwrap_or_else(|_| String::from("{}")),
    );
    doc
}
