fn main() {
    entmin_fuzz_afl::run("dataset-jsonl");
}
