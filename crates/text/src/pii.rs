//! Personal data in free text: Latin American national identifiers, e-mail addresses and
//! phone numbers, found so they can be redacted from logs, the audit log and (when a
//! deployment asks for it) ingested documents.
//!
//! Identifiers with a check digit (RUT, CPF, CNPJ, CURP, RFC, CUIT, Uruguayan CI) are only
//! reported when the digit is right, so article numbers, law numbers and amounts stay. The
//! Argentine DNI and the Colombian cédula have no check digit: they are reported only after a
//! word that names them ("DNI 12.345.678", "C.C. 1.020.304.050"), as are phone numbers
//! written without an international prefix.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

/// What kind of personal data a span holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PiiKind {
    /// Chilean RUT/RUN (mod 11).
    Rut,
    /// Brazilian CPF (two mod 11 digits).
    Cpf,
    /// Brazilian CNPJ (two weighted mod 11 digits).
    Cnpj,
    /// Mexican CURP (18 characters, check digit).
    Curp,
    /// Mexican RFC (12 or 13 characters, check digit).
    Rfc,
    /// Argentine DNI (after "DNI").
    Dni,
    /// Argentine CUIT/CUIL (mod 11).
    Cuit,
    /// Uruguayan cédula de identidad (check digit).
    CiUruguay,
    /// Colombian cédula de ciudadanía (after "C.C." or "cédula").
    CedulaColombia,
    /// An e-mail address.
    Email,
    /// A phone number.
    Phone,
}

impl PiiKind {
    /// The placeholder that replaces it: `[RUT]`, `[CPF]`…
    pub fn placeholder(self) -> &'static str {
        match self {
            PiiKind::Rut => "[RUT]",
            PiiKind::Cpf => "[CPF]",
            PiiKind::Cnpj => "[CNPJ]",
            PiiKind::Curp => "[CURP]",
            PiiKind::Rfc => "[RFC]",
            PiiKind::Dni => "[DNI]",
            PiiKind::Cuit => "[CUIT]",
            PiiKind::CiUruguay => "[CI]",
            PiiKind::CedulaColombia => "[CC]",
            PiiKind::Email => "[EMAIL]",
            PiiKind::Phone => "[PHONE]",
        }
    }
}

/// A span of personal data: `text[start..end]` (byte offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PiiMatch {
    /// What it is.
    pub kind: PiiKind,
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

/// How a candidate is confirmed.
enum Check {
    /// The whole match, validated by its check digit(s).
    Digit(fn(&str) -> bool),
    /// Capture group 1 after a naming keyword, with this many digits (inclusive).
    Named(usize, usize),
    /// The match as it stands (e-mails, international phone numbers with enough digits).
    Shape(usize, usize),
}

struct Detector {
    kind: PiiKind,
    pattern: Regex,
    check: Check,
}

static DETECTORS: LazyLock<Vec<Detector>> = LazyLock::new(|| {
    let d = |kind, pattern: &str, check| Detector {
        kind,
        pattern: Regex::new(pattern).expect("PII patterns are valid"),
        check,
    };
    let named_prefix = r"\s*(?:N(?:[°º]|o\.?|\.)\s*|n[úu]m(?:ero|\.)?\s*|:\s*)?";
    vec![
        d(
            PiiKind::Cnpj,
            r"\b(?:\d{2}\.\d{3}\.\d{3}/\d{4}-\d{2}|\d{14})\b",
            Check::Digit(cnpj_valid),
        ),
        d(
            PiiKind::Cpf,
            r"\b(?:\d{3}\.\d{3}\.\d{3}-\d{2}|\d{11})\b",
            Check::Digit(cpf_valid),
        ),
        d(
            PiiKind::Cuit,
            r"\b(?:20|23|24|27|30|33|34)-?\d{2}\.?\d{3}\.?\d{3}-?\d\b",
            Check::Digit(cuit_valid),
        ),
        d(
            PiiKind::Rut,
            r"\b(?:\d{1,2}\.\d{3}\.\d{3}|\d{7,8})-[\dkK]\b",
            Check::Digit(rut_valid),
        ),
        d(
            PiiKind::CiUruguay,
            r"\b(?:\d\.?\d{3}\.?\d{3}|\d{3}\.?\d{3})-\d\b",
            Check::Digit(ci_uruguay_valid),
        ),
        d(
            PiiKind::Curp,
            r"\b[A-Z][AEIOUX][A-Z]{2}\d{6}[HMX][A-Z]{2}[B-DF-HJ-NP-TV-Z]{3}[A-Z\d]\d\b",
            Check::Digit(curp_valid),
        ),
        d(
            PiiKind::Rfc,
            r"\b[A-ZÑ&]{3,4}\d{6}[A-Z\d]{2}[\dA]\b",
            Check::Digit(rfc_valid),
        ),
        d(
            PiiKind::Dni,
            &format!(
                r"(?i)\b(?:D\.?N\.?I\.?|documento nacional de identidad){named_prefix}(\d{{1,2}}\.?\d{{3}}\.?\d{{3}})\b"
            ),
            Check::Named(7, 8),
        ),
        d(
            PiiKind::CedulaColombia,
            &format!(
                r"(?i)\b(?:C\.\s?C\.?|CC|c[ée]dula(?: de ciudadan[íi]a)?){named_prefix}(\d{{1,3}}(?:\.?\d{{3}}){{1,3}})\b"
            ),
            Check::Named(6, 10),
        ),
        d(
            PiiKind::Email,
            r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
            Check::Shape(0, usize::MAX),
        ),
        d(
            PiiKind::Phone,
            r"\+\d{1,3}[\s.-]?(?:\(\d{1,4}\)[\s.-]?)?\d{1,5}(?:[\s.-]?\d{2,5}){1,4}\b",
            Check::Shape(8, 15),
        ),
        d(
            PiiKind::Phone,
            r"(?i)\b(?:tel[ée]fono|telefone|tel\.?|fono|celular|cel\.?|m[óo]vil|whats[aá]pp?)\s*:?\s*(\(?\d[\d\s().-]{5,16}\d)",
            Check::Named(7, 13),
        ),
    ]
});

/// Every span of personal data in `text`, in order, without overlaps (where two detectors
/// claim overlapping text, the earlier and then the longer span wins).
pub fn find_pii(text: &str) -> Vec<PiiMatch> {
    let mut found = Vec::new();
    for detector in DETECTORS.iter() {
        for caps in detector.pattern.captures_iter(text) {
            let whole = caps.get(0).expect("group 0 always matches");
            let span = match detector.check {
                Check::Digit(valid) => valid(whole.as_str()).then_some(whole),
                Check::Named(min, max) => caps
                    .get(1)
                    .filter(|m| (min..=max).contains(&digit_count(m.as_str()))),
                Check::Shape(min, max) => {
                    let n = digit_count(whole.as_str());
                    (detector.kind == PiiKind::Email || (min..=max).contains(&n)).then_some(whole)
                }
            };
            if let Some(m) = span {
                found.push(PiiMatch {
                    kind: detector.kind,
                    start: m.start(),
                    end: m.end(),
                });
            }
        }
    }
    found.sort_by_key(|m| (m.start, std::cmp::Reverse(m.end)));
    let mut kept: Vec<PiiMatch> = Vec::with_capacity(found.len());
    for m in found {
        if kept.last().is_none_or(|last| m.start >= last.end) {
            kept.push(m);
        }
    }
    kept
}

/// `text` with every span of personal data replaced by its placeholder (`[RUT]`, `[EMAIL]`…);
/// borrowed unchanged when there is none.
pub fn redact_pii(text: &str) -> Cow<'_, str> {
    let found = find_pii(text);
    if found.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for m in found {
        out.push_str(&text[at..m.start]);
        out.push_str(m.kind.placeholder());
        at = m.end;
    }
    out.push_str(&text[at..]);
    Cow::Owned(out)
}

fn digit_count(s: &str) -> usize {
    s.chars().filter(char::is_ascii_digit).count()
}

fn digits(s: &str) -> Vec<u32> {
    s.chars().filter_map(|c| c.to_digit(10)).collect()
}

/// Σ digit × weight, weights aligned from the left.
fn weighted(ds: &[u32], weights: &[u32]) -> u32 {
    ds.iter().zip(weights).map(|(d, w)| d * w).sum()
}

/// Chilean RUT: body digits from the right times 2,3,4,5,6,7,2…; 11 − Σ mod 11, with 11 → 0
/// and 10 → K.
fn rut_valid(s: &str) -> bool {
    let Some((body, dv)) = s.rsplit_once('-') else {
        return false;
    };
    let body = digits(body);
    let sum: u32 = body
        .iter()
        .rev()
        .zip([2, 3, 4, 5, 6, 7].iter().cycle())
        .map(|(d, w)| d * w)
        .sum();
    let expected = match 11 - sum % 11 {
        11 => '0',
        10 => 'K',
        n => char::from_digit(n, 10).unwrap_or('?'),
    };
    dv.eq_ignore_ascii_case(&expected.to_string())
}

/// Brazilian CPF: two check digits, mod 11 over weights 10..2 and 11..2; repeated digits
/// (111.111.111-11) are not issued.
fn cpf_valid(s: &str) -> bool {
    let ds = digits(s);
    if ds.len() != 11 || ds.iter().all(|&d| d == ds[0]) {
        return false;
    }
    let check = |n: usize| {
        (weighted(&ds[..n], &((2..=n as u32 + 1).rev().collect::<Vec<_>>())) * 10) % 11 % 10
    };
    check(9) == ds[9] && check(10) == ds[10]
}

/// Brazilian CNPJ: two check digits over fixed weights; remainder < 2 gives 0.
fn cnpj_valid(s: &str) -> bool {
    let ds = digits(s);
    if ds.len() != 14 || ds.iter().all(|&d| d == ds[0]) {
        return false;
    }
    let dv = |n: usize, weights: &[u32]| match weighted(&ds[..n], weights) % 11 {
        r if r < 2 => 0,
        r => 11 - r,
    };
    dv(12, &[5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]) == ds[12]
        && dv(13, &[6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]) == ds[13]
}

/// Argentine CUIT/CUIL: weights 5,4,3,2,7,6,5,4,3,2; 11 − Σ mod 11, 11 → 0, 10 is never
/// issued.
fn cuit_valid(s: &str) -> bool {
    let ds = digits(s);
    if ds.len() != 11 {
        return false;
    }
    let dv = match 11 - weighted(&ds[..10], &[5, 4, 3, 2, 7, 6, 5, 4, 3, 2]) % 11 {
        11 => 0,
        10 => return false,
        n => n,
    };
    dv == ds[10]
}

/// Uruguayan CI: seven digits (six padded with a leading zero) times 2,9,8,7,6,3,4;
/// (10 − Σ mod 10) mod 10.
fn ci_uruguay_valid(s: &str) -> bool {
    let mut ds = digits(s);
    let Some(dv) = ds.pop() else { return false };
    if ds.len() == 6 {
        ds.insert(0, 0);
    }
    ds.len() == 7 && (10 - weighted(&ds, &[2, 9, 8, 7, 6, 3, 4]) % 10) % 10 == dv
}

/// Mexican CURP: the 18th character is (10 − Σ value × (18 − i) mod 10) mod 10 over the first
/// 17, values from "0-9A-NÑO-Z" in order.
fn curp_valid(s: &str) -> bool {
    const ALPHABET: &str = "0123456789ABCDEFGHIJKLMNÑOPQRSTUVWXYZ";
    let chars: Vec<char> = s.chars().collect();
    if chars.len() != 18 || !valid_date(&s[4..10]) {
        return false;
    }
    let mut sum = 0;
    for (i, c) in chars[..17].iter().enumerate() {
        let Some(v) = ALPHABET.chars().position(|a| a == *c) else {
            return false;
        };
        sum += v as u32 * (18 - i as u32);
    }
    chars[17].to_digit(10) == Some((10 - sum % 10) % 10)
}

/// Mexican RFC: companies (12 characters) are padded with a leading space to 13; the last
/// character is 11 − Σ value × (13 − i) mod 11 over the first 12, 11 → 0 and 10 → A.
fn rfc_valid(s: &str) -> bool {
    const ALPHABET: &str = "0123456789ABCDEFGHIJKLMN&OPQRSTUVWXYZ Ñ";
    let mut chars: Vec<char> = s.chars().collect();
    if chars.len() == 12 {
        chars.insert(0, ' ');
    }
    if chars.len() != 13 {
        return false;
    }
    let date: String = chars[4..10].iter().collect();
    if !valid_date(&date) {
        return false;
    }
    let mut sum = 0;
    for (i, c) in chars[..12].iter().enumerate() {
        let Some(v) = ALPHABET.chars().position(|a| a == *c) else {
            return false;
        };
        sum += v as u32 * (13 - i as u32);
    }
    let expected = match 11 - sum % 11 {
        11 => '0',
        10 => 'A',
        n => char::from_digit(n, 10).unwrap_or('?'),
    };
    chars[12] == expected
}

/// YYMMDD with a real month and day.
fn valid_date(yymmdd: &str) -> bool {
    let ds = digits(yymmdd);
    if ds.len() != 6 {
        return false;
    }
    let month = ds[2] * 10 + ds[3];
    let day = ds[4] * 10 + ds[5];
    (1..=12).contains(&month) && (1..=31).contains(&day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<PiiKind> {
        find_pii(text).into_iter().map(|m| m.kind).collect()
    }

    #[test]
    fn chilean_rut_with_a_right_check_digit_only() {
        assert_eq!(kinds("RUT 12.345.678-5"), [PiiKind::Rut]);
        assert_eq!(kinds("run 11111111-1"), [PiiKind::Rut]);
        assert_eq!(kinds("empresa 76.086.428-5"), [PiiKind::Rut]);
        assert_eq!(kinds("rol 15.555.555-k"), Vec::<PiiKind>::new());
        assert_eq!(kinds("rut 12.345.678-9"), Vec::<PiiKind>::new());
        assert_eq!(
            redact_pii("Don Juan, RUT 12.345.678-5, declara"),
            "Don Juan, RUT [RUT], declara"
        );
    }

    #[test]
    fn rut_ending_in_k() {
        assert_eq!(kinds("RUN 10.000.013-K"), [PiiKind::Rut]);
        assert_eq!(kinds("RUN 10000013-k"), [PiiKind::Rut]);
        assert_eq!(kinds("RUN 10.000.013-0"), Vec::<PiiKind>::new());
    }

    #[test]
    fn brazilian_cpf_and_cnpj() {
        assert_eq!(kinds("CPF 529.982.247-25"), [PiiKind::Cpf]);
        assert_eq!(kinds("cpf 52998224725"), [PiiKind::Cpf]);
        assert_eq!(kinds("CPF 529.982.247-24"), Vec::<PiiKind>::new());
        assert_eq!(kinds("CPF 111.111.111-11"), Vec::<PiiKind>::new());
        assert_eq!(kinds("CNPJ 11.222.333/0001-81"), [PiiKind::Cnpj]);
        assert_eq!(kinds("cnpj 11222333000181"), [PiiKind::Cnpj]);
        assert_eq!(kinds("CNPJ 11.222.333/0001-82"), Vec::<PiiKind>::new());
    }

    #[test]
    fn mexican_curp_and_rfc() {
        assert_eq!(kinds("CURP GODE561231HDFRRN00"), [PiiKind::Curp]);
        assert_eq!(kinds("CURP GODE561231HDFRRN04"), Vec::<PiiKind>::new());
        assert_eq!(kinds("CURP GODE561331HDFRRN00"), Vec::<PiiKind>::new());
        assert_eq!(kinds("RFC GODE561231GR8"), [PiiKind::Rfc]);
        assert_eq!(kinds("RFC GODE561231GR9"), Vec::<PiiKind>::new());
        assert_eq!(kinds("RFC de la empresa ABC680524P73"), [PiiKind::Rfc]);
        assert_eq!(
            kinds("RFC de la empresa ABC680524P77"),
            Vec::<PiiKind>::new()
        );
    }

    #[test]
    fn argentine_cuit_and_dni() {
        assert_eq!(kinds("CUIT 20-12345678-6"), [PiiKind::Cuit]);
        assert_eq!(kinds("CUIL 27-12.345.678-0"), [PiiKind::Cuit]);
        assert_eq!(kinds("CUIT 20-12345678-7"), Vec::<PiiKind>::new());
        assert_eq!(kinds("DNI 12.345.678"), [PiiKind::Dni]);
        assert_eq!(kinds("D.N.I. N° 30123456"), [PiiKind::Dni]);
        assert_eq!(
            redact_pii("titular del DNI 12.345.678."),
            "titular del DNI [DNI]."
        );
        // No keyword, no check digit: an ordinary number.
        assert_eq!(kinds("la suma de 12.345.678 pesos"), Vec::<PiiKind>::new());
    }

    #[test]
    fn uruguayan_ci_and_colombian_cedula() {
        assert_eq!(kinds("cédula 1.234.567-2"), [PiiKind::CiUruguay]);
        assert_eq!(kinds("CI 4.567.890-5"), [PiiKind::CiUruguay]);
        assert_eq!(kinds("CI 1.234.567-3"), Vec::<PiiKind>::new());
        assert_eq!(kinds("C.C. 1.020.304.050"), [PiiKind::CedulaColombia]);
        assert_eq!(
            kinds("cédula de ciudadanía No. 79456123"),
            [PiiKind::CedulaColombia]
        );
        assert_eq!(kinds("expediente 79456123"), Vec::<PiiKind>::new());
    }

    #[test]
    fn emails_and_phones() {
        assert_eq!(
            kinds("escriba a maria.perez@correo.gob.cl"),
            [PiiKind::Email]
        );
        assert_eq!(kinds("llame al +56 9 8765 4321"), [PiiKind::Phone]);
        assert_eq!(kinds("ligue +55 (11) 91234-5678"), [PiiKind::Phone]);
        assert_eq!(kinds("celular: 987 654 321"), [PiiKind::Phone]);
        assert_eq!(kinds("teléfono (01) 555-1234"), [PiiKind::Phone]);
        assert_eq!(kinds("+1 5"), Vec::<PiiKind>::new());
    }

    #[test]
    fn legal_numbers_are_not_personal_data() {
        for text in [
            "Ley N° 19.628 sobre protección de la vida privada, artículo 12, inciso 2°.",
            "Lei nº 13.709, de 14 de agosto de 2018, art. 5º, VI.",
            "Decreto 1.234 de 2020; multa de 10.000 UTM; $ 1.234.567.",
            "Resolución Exenta N° 4.567-2021 del Servicio.",
            "DOF 12/05/2023, expediente 2023-000123, CEP 70040-010.",
            "Artículo 123-B del Código Penal Federal; 20.000.000 habitantes.",
        ] {
            assert_eq!(find_pii(text), [], "{text}");
        }
    }

    #[test]
    fn several_in_one_text_are_all_redacted() {
        let text = "Juan (RUT 12.345.678-5, juan@x.cl) y Ana (CPF 529.982.247-25).";
        assert_eq!(
            redact_pii(text),
            "Juan (RUT [RUT], [EMAIL]) y Ana (CPF [CPF])."
        );
    }
}
