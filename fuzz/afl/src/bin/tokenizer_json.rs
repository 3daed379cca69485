fn main() {
    entmin_fuzz_afl::run("tokenizer-json");
}
