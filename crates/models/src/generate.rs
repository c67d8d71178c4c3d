//! Text generation with candle: GGUF quantised models — Qwen2 (the default instruction
//! model), Llama (SmolLM2 here; Latam-GPT quantised) and Gemma 3, chosen by the file's
//! `general.architecture` — and Llama-family safetensors checkpoints (Latam-GPT's native
//! release; bf16 on a GPU with the `cuda` feature). The prompt is rendered with the model's own chat template (GGUF
//! `tokenizer.chat_template`, Jinja via minijinja); the tokenizer comes from a tokenizer.json
//! when given, else from the GGUF vocabulary. Sampling is greedy at temperature 0, else
//! temperature and top-p with a seed. Generation stops at end-of-turn tokens, stop sequences
//! or `max_tokens`; a prompt that would overflow the context window is refused.

use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use cabildo_core::{FinishReason, Generation, GenerationRequest, Generator, ModelError, Role};
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarBuilder;
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::models::{llama, quantized_gemma3};
use tokenizers::Tokenizer;

use crate::decoder::Decoder;
use crate::{gguf_tokenizer, runtime};

enum Weights {
    /// Llama and Qwen2 GGUF: Cabildo's own forward pass.
    Decoder(Decoder),
    Gemma3(quantized_gemma3::ModelWeights),
    /// Llama-family safetensors (f32 on the CPU, bf16 on a GPU).
    LlamaDense {
        model: llama::Llama,
        cache: llama::Cache,
        config: llama::Config,
        dtype: DType,
    },
}

impl Weights {
    /// Logits after `ids`, which sit at positions `pos..` (0 starts a new sequence).
    fn forward(&mut self, ids: &[u32], pos: usize, device: &Device) -> candle_core::Result<Tensor> {
        let x = || Tensor::new(ids, device)?.unsqueeze(0);
        match self {
            Weights::Decoder(m) => m.forward(ids, pos),
            Weights::Gemma3(m) => m.forward(&x()?, pos),
            Weights::LlamaDense {
                model,
                cache,
                config,
                dtype,
            } => {
                if pos == 0 {
                    // A new conversation: this cache does not reset itself.
                    *cache = llama::Cache::new(true, *dtype, config, device)?;
                }
                model.forward(&x()?, pos, cache)
            }
        }
    }
}

/// A GGUF model ready to generate. One generation runs at a time (the KV cache is shared);
/// concurrent callers queue on its lock.
pub struct LocalGenerator {
    name: String,
    architecture: String,
    weights: Mutex<Weights>,
    tokenizer: Tokenizer,
    template: String,
    bos: String,
    eos: String,
    /// Token ids that end a turn.
    end_ids: Vec<u32>,
    /// Put before the prompt when the model wants it and the template did not.
    bos_id: Option<u32>,
    context: usize,
    device: Device,
}

fn meta_str(ct: &Content, key: &str) -> Option<String> {
    ct.metadata
        .get(key)
        .and_then(|v| v.to_string().ok())
        .cloned()
}

fn meta_u32(ct: &Content, key: &str) -> Option<u32> {
    ct.metadata.get(key).and_then(|v| match v {
        Value::U32(x) => Some(*x),
        Value::I32(x) => u32::try_from(*x).ok(),
        Value::U64(x) => u32::try_from(*x).ok(),
        _ => None,
    })
}

/// A GGUF file opened for loading: its header, the file to read tensors from, and the
/// tokenizer (from a tokenizer.json when given, else built from the GGUF vocabulary).
pub(crate) struct GgufFile {
    pub ct: Content,
    pub file: std::fs::File,
    pub tokenizer: Tokenizer,
    /// Put before a prompt when the model asks for it (`tokenizer.ggml.add_bos_token`).
    pub bos_id: Option<u32>,
    /// The declared beginning-of-sequence token, whether or not prompts start with it.
    pub declared_bos: Option<u32>,
}

impl GgufFile {
    pub fn open(path: &Path, tokenizer_json: Option<&Path>) -> Result<Self, ModelError> {
        let mut file = std::fs::File::open(path).map_err(|e| ModelError::Missing {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let ct = Content::read(&mut file).map_err(|e| gguf_corrupt(path, e.to_string()))?;
        let tokenizer = match tokenizer_json {
            Some(t) => Tokenizer::from_file(t).map_err(|e| ModelError::Corrupt {
                path: t.display().to_string(),
                format: "tokenizer.json",
                reason: e.to_string(),
            })?,
            None => gguf_tokenizer::from_gguf(&ct).map_err(|e| gguf_corrupt(path, e))?,
        };
        let add_bos = matches!(
            ct.metadata.get("tokenizer.ggml.add_bos_token"),
            Some(Value::Bool(true))
        );
        let declared_bos = meta_u32(&ct, "tokenizer.ggml.bos_token_id");
        Ok(GgufFile {
            bos_id: declared_bos.filter(|_| add_bos),
            declared_bos,
            ct,
            file,
            tokenizer,
        })
    }
}

/// A GGUF file that could not be read as one.
pub(crate) fn gguf_corrupt(path: &Path, reason: String) -> ModelError {
    ModelError::Corrupt {
        path: path.display().to_string(),
        format: "GGUF model",
        reason,
    }
}

/// The declared end-of-sequence ids plus the end-of-turn markers the chat formats use, when
/// the vocabulary has them: instruction models end a reply with those, not always with EOS.
fn end_of_turn_ids(tokenizer: &Tokenizer, mut ids: Vec<u32>, eos: &str) -> Vec<u32> {
    for t in [
        eos,
        "<|im_end|>",
        "<|endoftext|>",
        "<end_of_turn>",
        "<|eot_id|>",
        "</s>",
    ] {
        if let Some(id) = tokenizer.token_to_id(t) {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    ids
}

/// Prompt tokens per forward pass during prefill.
const PREFILL_CHUNK: usize = 256;

/// Gemma's turn format, for Gemma GGUF files without a template (Gemma has no system role:
/// a system message is put before the first user turn).
const GEMMA: &str = "{% for m in messages %}{% if m.role == 'system' %}<start_of_turn>user\n{{ m.content }}\n{% elif m.role == 'user' %}{% if loop.index0 == 0 or messages[loop.index0 - 1].role != 'system' %}<start_of_turn>user\n{% endif %}{{ m.content }}<end_of_turn>\n{% else %}<start_of_turn>model\n{{ m.content }}<end_of_turn>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}";

/// ChatML, for GGUF files without a template.
const CHATML: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// The model of a GGUF file's architecture, its tensors read from `reader`.
fn load_gguf<R: std::io::Read + std::io::Seek>(
    architecture: &str,
    ct: Content,
    reader: &mut R,
    device: &Device,
) -> Result<Weights, String> {
    let error = |e: candle_core::Error| e.to_string();
    Ok(match architecture {
        a if Decoder::supports(a) => {
            Weights::Decoder(Decoder::from_gguf(&ct, reader, device).map_err(error)?)
        }
        a if a.starts_with("gemma") => Weights::Gemma3(
            quantized_gemma3::ModelWeights::from_gguf(ct, reader, device).map_err(error)?,
        ),
        other => {
            return Err(format!(
                "architecture {other:?} is not supported (llama, qwen2, gemma3)"
            ))
        }
    })
}

impl LocalGenerator {
    /// Loads a model folder: `model.gguf` (with `tokenizer.json` beside it overriding the
    /// GGUF's own tokenizer) when the folder has one, else a safetensors checkpoint
    /// ([`LocalGenerator::from_safetensors`], named by its `config.json`).
    pub fn from_folder(dir: &Path) -> Result<Self, ModelError> {
        let gguf = dir.join("model.gguf");
        if gguf.is_file() || !dir.join("config.json").is_file() {
            let tokenizer = dir.join("tokenizer.json");
            return Self::from_gguf(&gguf, tokenizer.is_file().then_some(tokenizer.as_path()));
        }
        Self::from_safetensors(dir)
    }

    /// Loads a GGUF file; `tokenizer_json` overrides the tokenizer built from the GGUF.
    pub fn from_gguf(path: &Path, tokenizer_json: Option<&Path>) -> Result<Self, ModelError> {
        let corrupt = |reason: String| gguf_corrupt(path, reason);
        let GgufFile {
            ct,
            mut file,
            tokenizer,
            bos_id,
            ..
        } = GgufFile::open(path, tokenizer_json)?;
        let architecture = meta_str(&ct, "general.architecture").unwrap_or_default();
        let context =
            meta_u32(&ct, &format!("{architecture}.context_length")).unwrap_or(2048) as usize;
        let token_text = |key: &str| meta_u32(&ct, key).and_then(|id| tokenizer.id_to_token(id));
        let bos = token_text("tokenizer.ggml.bos_token_id").unwrap_or_default();
        let eos = token_text("tokenizer.ggml.eos_token_id").unwrap_or_default();
        let end_ids = end_of_turn_ids(
            &tokenizer,
            meta_u32(&ct, "tokenizer.ggml.eos_token_id")
                .into_iter()
                .collect(),
            "",
        );
        let template = meta_str(&ct, "tokenizer.chat_template").unwrap_or_else(|| {
            if architecture.starts_with("gemma") {
                GEMMA
            } else {
                CHATML
            }
            .to_string()
        });
        let name = meta_str(&ct, "general.name").unwrap_or_else(|| {
            path.file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("gguf")
                .to_string()
        });
        let device = crate::device();
        let weights = load_gguf(&architecture, ct, &mut file, &device).map_err(corrupt)?;
        Ok(LocalGenerator {
            bos_id,
            name,
            architecture,
            weights: Mutex::new(weights),
            tokenizer,
            template,
            bos,
            eos,
            end_ids,
            context,
            device,
        })
    }

    /// Loads a Llama-family checkpoint folder (Latam-GPT's native release): `config.json`,
    /// one or more `*.safetensors`, `tokenizer.json`, and `tokenizer_config.json` for the chat
    /// template when present. Weights are f32 on the CPU and bf16 on a CUDA GPU.
    pub fn from_safetensors(dir: &Path) -> Result<Self, ModelError> {
        let missing = |p: &Path, e: String| ModelError::Missing {
            path: p.display().to_string(),
            reason: e,
        };
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path)
            .map_err(|e| missing(&config_path, e.to_string()))?;
        let cfg: llama::LlamaConfig =
            serde_json::from_str(&text).map_err(|e| ModelError::Corrupt {
                path: config_path.display().to_string(),
                format: "Llama config.json",
                reason: e.to_string(),
            })?;
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| missing(dir, e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(missing(
                &dir.join("model.safetensors"),
                "no *.safetensors in the folder".into(),
            ));
        }
        let tokenizer_path = dir.join("tokenizer.json");
        let tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(|e| {
            if tokenizer_path.exists() {
                ModelError::Corrupt {
                    path: tokenizer_path.display().to_string(),
                    format: "tokenizer.json",
                    reason: e.to_string(),
                }
            } else {
                missing(&tokenizer_path, "no such file".into())
            }
        })?;
        let tokenizer_config: serde_json::Value =
            std::fs::read_to_string(dir.join("tokenizer_config.json"))
                .ok()
                .and_then(|t| serde_json::from_str(&t).ok())
                .unwrap_or_default();
        let device = crate::device();
        let dtype = if device.is_cuda() {
            DType::BF16
        } else {
            DType::F32
        };
        let corrupt = |reason: String| ModelError::Corrupt {
            path: files[0].display().to_string(),
            format: "Llama safetensors",
            reason,
        };
        // Safety: read-only maps of files that are replaced by rename, never in place.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files, dtype, &device) }
            .map_err(|e| corrupt(e.to_string()))?;
        // candle's loader panics on a missing tensor: check them all first.
        let mut needed = vec![
            "model.embed_tokens.weight".to_string(),
            "model.norm.weight".to_string(),
        ];
        for i in 0..cfg.num_hidden_layers {
            for t in [
                "self_attn.q_proj",
                "self_attn.k_proj",
                "self_attn.v_proj",
                "self_attn.o_proj",
                "mlp.gate_proj",
                "mlp.up_proj",
                "mlp.down_proj",
                "input_layernorm",
                "post_attention_layernorm",
            ] {
                needed.push(format!("model.layers.{i}.{t}.weight"));
            }
        }
        if let Some(absent) = needed.iter().find(|n| !vb.contains_tensor(n)) {
            return Err(corrupt(format!("tensor {absent} is missing")));
        }
        let eos_ids: Vec<u32> = match &cfg.eos_token_id {
            Some(llama::LlamaEosToks::Single(id)) => vec![*id],
            Some(llama::LlamaEosToks::Multiple(ids)) => ids.clone(),
            None => Vec::new(),
        };
        let context = cfg.max_position_embeddings;
        let config = cfg.into_config(false);
        let model = llama::Llama::load(vb, &config).map_err(|e| corrupt(e.to_string()))?;
        let cache = llama::Cache::new(true, dtype, &config, &device).map_err(runtime)?;
        let text_of = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Object(o) => o
                .get("content")
                .and_then(|c| c.as_str())
                .map(str::to_string),
            _ => None,
        };
        let bos = text_of(&tokenizer_config["bos_token"]).unwrap_or_default();
        let eos = text_of(&tokenizer_config["eos_token"]).unwrap_or_default();
        let end_ids = end_of_turn_ids(&tokenizer, eos_ids, &eos);
        let template = tokenizer_config["chat_template"]
            .as_str()
            .map_or_else(|| CHATML.to_string(), str::to_string);
        Ok(LocalGenerator {
            name: dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("llama")
                .to_string(),
            architecture: "llama".into(),
            weights: Mutex::new(Weights::LlamaDense {
                model,
                cache,
                config,
                dtype,
            }),
            bos_id: None,
            tokenizer,
            template,
            bos,
            eos,
            end_ids,
            context,
            device,
        })
    }

    /// `llama`, `qwen2` or `gemma3`.
    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    /// The tokenizer in use.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The prompt as the model sees it: the conversation through the chat template.
    pub fn render(&self, request: &GenerationRequest) -> Result<String, ModelError> {
        let mut env = minijinja::Environment::new();
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        env.add_template("chat", &self.template)
            .map_err(|e| ModelError::Runtime(format!("chat template: {e}")))?;
        let messages: Vec<minijinja::Value> = request
            .messages
            .iter()
            .map(|m| {
                minijinja::context! { role => m.role.as_str(), content => m.content.clone() }
            })
            .collect();
        let tmpl = env
            .get_template("chat")
            .map_err(|e| ModelError::Runtime(format!("chat template: {e}")))?;
        tmpl.render(minijinja::context! {
            messages => messages,
            add_generation_prompt => true,
            bos_token => self.bos.clone(),
            eos_token => self.eos.clone(),
        })
        .map_err(|e| ModelError::Runtime(format!("chat template: {e}")))
    }
}

/// Decodes a growing list of ids and hands out only new, complete text. Only the ids since
/// the last emitted piece are decoded (with the one before them, so that spacing decoders
/// see the same context), keeping each step's cost flat instead of growing with the reply.
struct TextStream<'a> {
    tokenizer: &'a Tokenizer,
    ids: Vec<u32>,
    /// Start of the window decoded for context.
    prev: usize,
    /// End of what has been emitted.
    current: usize,
}

impl TextStream<'_> {
    fn decode(&self, ids: &[u32]) -> Result<String, ModelError> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| ModelError::Runtime(e.to_string()))
    }

    fn push(&mut self, id: u32) -> Result<String, ModelError> {
        let before = self.decode(&self.ids[self.prev..self.current])?;
        self.ids.push(id);
        let text = self.decode(&self.ids[self.prev..])?;
        // Wait while the last token ends in the middle of a UTF-8 character.
        if text.ends_with('\u{FFFD}') {
            return Ok(String::new());
        }
        match text.get(before.len()..) {
            Some(new) if text.starts_with(&before) && !new.is_empty() => {
                let new = new.to_string();
                self.prev = self.current;
                self.current = self.ids.len();
                Ok(new)
            }
            _ => Ok(String::new()),
        }
    }
}

impl Generator for LocalGenerator {
    fn name(&self) -> &str {
        &self.name
    }

    fn context_window(&self) -> usize {
        self.context
    }

    fn generate(
        &self,
        request: &GenerationRequest,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation, ModelError> {
        if request.messages.iter().all(|m| m.role != Role::User) {
            return Err(ModelError::Input(
                "the conversation has no user message".into(),
            ));
        }
        let prompt = self.render(request)?;
        let mut prompt_ids = self
            .tokenizer
            .encode(prompt, false)
            .map_err(|e| ModelError::Input(e.to_string()))?
            .get_ids()
            .to_vec();
        if let Some(bos) = self.bos_id {
            if prompt_ids.first() != Some(&bos) {
                prompt_ids.insert(0, bos);
            }
        }
        let needed = prompt_ids.len() + request.max_tokens;
        if needed > self.context {
            return Err(ModelError::Input(format!(
                "prompt of {} tokens plus up to {} new tokens exceeds the model's context of {} tokens; shorten the sources or lower max_tokens",
                prompt_ids.len(),
                request.max_tokens,
                self.context
            )));
        }
        let sampling = if request.temperature <= 0.0 {
            Sampling::ArgMax
        } else {
            match request.top_p {
                Some(p) if p < 1.0 => Sampling::TopP {
                    p,
                    temperature: request.temperature,
                },
                _ => Sampling::All {
                    temperature: request.temperature,
                },
            }
        };
        let mut sampler = LogitsProcessor::from_sampling(request.seed, sampling);
        let mut weights = self
            .weights
            .lock()
            .map_err(|_| ModelError::Runtime("model lock poisoned".into()))?;

        let started = Instant::now();
        // The prompt goes through in chunks: attention scores grow with chunk × context, and
        // smaller chunks keep them in cache (and the peak memory down).
        let mut logits = None;
        for (i, piece) in prompt_ids.chunks(PREFILL_CHUNK).enumerate() {
            logits = Some(
                weights
                    .forward(piece, i * PREFILL_CHUNK, &self.device)
                    .map_err(runtime)?,
            );
        }
        let mut logits =
            logits.ok_or_else(|| ModelError::Input("the rendered prompt is empty".into()))?;
        let mut stream = TextStream {
            tokenizer: &self.tokenizer,
            ids: Vec::new(),
            prev: 0,
            current: 0,
        };
        let mut text = String::new();
        let mut sent = 0; // bytes of `text` already handed to on_text
        let mut finish = FinishReason::Length;
        let mut first_token_at = None;
        let mut generated = 0;
        let hold = request.stop.iter().map(String::len).max().unwrap_or(0);
        for step in 0..request.max_tokens {
            let mut last = last_logits(&logits)
                .and_then(|l| l.to_dtype(candle_core::DType::F32))
                .map_err(runtime)?;
            if generated < request.min_tokens {
                last = without(&last, &self.end_ids).map_err(runtime)?;
            }
            let next = sampler.sample(&last).map_err(runtime)?;
            first_token_at.get_or_insert_with(Instant::now);
            if self.end_ids.contains(&next) {
                finish = FinishReason::Stop;
                break;
            }
            generated += 1;
            text.push_str(&stream.push(next)?);
            if let Some(cut) = request
                .stop
                .iter()
                .filter_map(|s| text.find(s.as_str()))
                .min()
            {
                text.truncate(cut);
                finish = FinishReason::StopSequence;
                break;
            }
            // Hold back what could still become a stop sequence.
            let safe = text.len().saturating_sub(hold);
            let safe = (0..=safe)
                .rev()
                .find(|&i| text.is_char_boundary(i))
                .unwrap_or(0);
            if safe > sent {
                if !on_text(&text[sent..safe]) {
                    finish = FinishReason::Cancelled;
                    sent = safe;
                    break;
                }
                sent = safe;
            }
            if step + 1 == request.max_tokens {
                break;
            }
            logits = weights
                .forward(&[next], prompt_ids.len() + step, &self.device)
                .map_err(runtime)?;
        }
        if finish != FinishReason::Cancelled && text.len() > sent {
            on_text(&text[sent..]);
        }
        let first = first_token_at.unwrap_or_else(Instant::now);
        Ok(Generation {
            text,
            prompt_tokens: prompt_ids.len(),
            completion_tokens: generated,
            finish,
            prompt_seconds: (first - started).as_secs_f64(),
            decode_seconds: first.elapsed().as_secs_f64(),
        })
    }
}

/// `logits` with the given tokens made impossible.
fn without(logits: &Tensor, ids: &[u32]) -> candle_core::Result<Tensor> {
    let mut values = logits.to_vec1::<f32>()?;
    for &id in ids {
        if let Some(v) = values.get_mut(id as usize) {
            *v = f32::NEG_INFINITY;
        }
    }
    Tensor::new(values, logits.device())
}

/// Logits of the last position, whatever rank the model returns.
fn last_logits(logits: &Tensor) -> candle_core::Result<Tensor> {
    let l = logits.squeeze(0)?;
    if l.rank() == 2 {
        l.get(l.dim(D::Minus2)? - 1)
    } else {
        Ok(l)
    }
}
