//! Helpers shared by the model tests: deterministic random weights and installed model files.

use std::path::PathBuf;

use candle_core::{Device, Tensor};

/// A deterministic source of small random weights (a linear congruential generator: tests
/// need repeatable tensors, not good randomness).
pub struct Weights {
    state: u64,
    scale: f32,
}

impl Weights {
    /// Values uniform in `[-scale/2, scale/2)` from `seed`.
    pub fn new(seed: u64, scale: f32) -> Self {
        Weights { state: seed, scale }
    }

    /// A tensor of `shape` on the CPU.
    pub fn tensor(&mut self, shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| {
                self.state = self
                    .state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((self.state >> 33) as f32 / (1u64 << 31) as f32 - 0.5) * self.scale
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).expect("tensor")
    }
}

/// A file or folder under the models folder, or `None` (with a "skipped" line) when
/// `scripts/setup-models.sh` has not installed it.
pub fn installed(rel: &str) -> Option<PathBuf> {
    cabildo_core::fixtures::installed_model(rel)
}

/// Cosine of two unit vectors.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// One question in Spanish, Portuguese and English, then an unrelated sentence.
pub const VOTING_AGE: [&str; 4] = [
    "¿Cuál es la edad mínima para votar en Chile?",
    "Qual é a idade mínima para votar no Chile?",
    "What is the minimum voting age in Chile?",
    "La receta lleva harina, huevos, leche y azúcar.",
];

/// Checks that the vectors of [`VOTING_AGE`]'s three questions are closer to each other, by
/// `margin`, than any of them is to the unrelated sentence.
pub fn assert_languages_agree(v: &[Vec<f32>], margin: f32) {
    let unrelated = dot(&v[0], &v[3])
        .max(dot(&v[1], &v[3]))
        .max(dot(&v[2], &v[3]));
    for (i, j) in [(0, 1), (0, 2), (1, 2)] {
        let c = dot(&v[i], &v[j]);
        assert!(
            c > unrelated + margin,
            "pair ({i},{j}) cos {c} vs unrelated {unrelated}"
        );
    }
}
