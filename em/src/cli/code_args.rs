//! The fields of a JSONL file of code problems, shared by `eval` (code mode) and by
//! `ft` / `rl` (code prompts, for `rl --reward tests`).

use entmin::dataset::Fields;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct CodeFieldArgs {
    /// Code problems: the tests field; giving it selects code problems (as the
    /// `humaneval` set does).
    #[arg(long)]
    pub test_field: Option<String>,
    /// Code problems: the field naming the function the tests call (default "entry_point").
    #[arg(long)]
    pub entry_point_field: Option<String>,
    /// Code problems: a field of imports or definitions run before the program.
    #[arg(long)]
    pub setup_field: Option<String>,
}

impl CodeFieldArgs {
    /// These fields, and the prompt field, as the dataset loader's field names.
    pub fn fields(&self, prompt: Option<String>) -> Fields {
        Fields {
            prompt,
            test: self.test_field.clone(),
            entry_point: self.entry_point_field.clone(),
            setup: self.setup_field.clone(),
            ..Fields::default()
        }
    }
}
