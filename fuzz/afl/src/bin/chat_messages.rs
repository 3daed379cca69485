fn main() {
    entmin_fuzz_afl::run("chat-messages");
}
