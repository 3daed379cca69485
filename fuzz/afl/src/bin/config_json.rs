fn main() {
    entmin_fuzz_afl::run("config-json");
}
