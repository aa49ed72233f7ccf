//! Propose and solve prompts for the three task types.
//!
//! Reference: `data_construction/prompts.py` and the `answer` instruction template of
//! `data_construction/process_data.py`. The wording is ours; the structure and every format
//! the parsers rely on are the reference's: one user message that asks for
//! `<think> … </think> <answer> … </answer>` and ends in `Assistant: <think>`; programs in
//! ```` ```python ```` blocks, inputs in ```` ```input ````, outputs in ```` ```output ````,
//! induction pairs in ```` ```input_i ```` / ```` ```output_i ````, the induction message in
//! ```` ```message ````; reference programs as `<snippet_i>` sections.
//!
//! One deliberate difference: the reference tells the proposer that nested functions and
//! classes are welcome while its parser refuses any program with more than one `def` line;
//! our prompt says what the parser accepts (`reject_multiple_functions`).

use serde::{Deserialize, Serialize};

use super::task::{InductionTask, SolveTask, TaskType, Triplet};

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// A prompt as chat messages (the reference always sends exactly one user message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    pub messages: Vec<Message>,
}

impl Prompt {
    fn user(content: String) -> Self {
        Prompt {
            messages: vec![Message {
                role: "user".into(),
                content,
            }],
        }
    }

    /// `(role, content)` pairs for `TextTokenizer::apply_chat_template`.
    pub fn pairs(&self) -> Vec<(&str, &str)> {
        self.messages
            .iter()
            .map(|m| (m.role.as_str(), m.content.as_str()))
            .collect()
    }

    /// The prompt without a chat template: the contents joined by newlines, which is what the
    /// reference's replacement template renders for base models (`chat_template = false`).
    pub fn plain_text(&self) -> String {
        self.messages
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Wraps a task in the instruction that asks for `<think>`/`<answer>`; the text ends in
/// `Assistant: <think>`, so the model's response continues its reasoning.
pub fn wrap(task: &str) -> String {
    format!(
        "The User gives the Assistant a task. The Assistant first reasons the task through in \
         its head, then gives the User its answer. The reasoning goes between <think> and \
         </think> tags and the answer between <answer> and </answer> tags, so a reply looks \
         like <think> reasoning </think> <answer> answer </answer>. User: {task}\nAssistant: <think>"
    )
}

/// What the proposer is told about `f` and the program's shape.
fn code_requirements(single_function: bool) -> &'static str {
    if single_function {
        "### Program requirements:\n\
         - Define exactly one function, named `f` (`def f(...): ...`): no other function, no \
         nested function and no method, since a program with more than one `def` is refused\n\
         - `f` must return a value\n\
         - `f` takes at least one argument\n\
         - `f` must be deterministic: the same input always gives the same output\n\
         - Make the program track state through several data transformations, so that working \
         it out takes many reasoning steps\n\
         - Do NOT use:\n  \
         * random numbers or random choices\n  \
         * dates or times\n  \
         * input/output (files, network)\n  \
         * printing or logging\n  \
         * any state outside the program\n\
         - It must finish within 10 seconds on an ordinary CPU\n\
         - Put all imports at the very top of the program\n\
         - The program ends with the `return` of `f`; anything after it is dropped\n"
    } else {
        "### Program requirements:\n\
         - Name the entry function `f` (`def f(...): ...`); helper functions may be nested \
         inside `f`, and custom classes defined at the top of the program\n\
         - `f` must return a value\n\
         - `f` takes at least one argument\n\
         - `f` must be deterministic: the same input always gives the same output\n\
         - Make the program track state through several data transformations, so that working \
         it out takes many reasoning steps\n\
         - Do NOT use:\n  \
         * random numbers or random choices\n  \
         * dates or times\n  \
         * input/output (files, network)\n  \
         * printing or logging\n  \
         * any state outside the program\n\
         - It must finish within 10 seconds on an ordinary CPU\n\
         - Put all imports and class definitions at the very top of the program\n\
         - The program ends with the `return` of `f`; anything after it is dropped\n"
    }
}

const EXAMPLE_INPUT: &str = "'Alice', {'score': 7, 'tags': ['x', 'y']}";
const EXAMPLE_INPUT_2: &str = "'Bob', {'score': 12, 'tags': []}";
const EXAMPLE_OUTPUT: &str = "{'score': 7, 'tags': ['x', 'y']}";

/// The reference programs, formatted as the reference formats them.
pub fn format_references(references: &[Triplet]) -> String {
    let mut out = String::new();
    for (i, r) in references.iter().enumerate() {
        out.push_str(&format!(
            "<snippet_{i}>\n```python\n{}\n```\n```input\n{}\n```\n```output\n{}\n```\n</snippet_{i}>\n",
            r.program, r.input, r.output
        ));
    }
    out
}

/// The proposer's prompt for a deduction (`code_o`) or abduction (`code_i`) task, given K
/// reference programs from the buffer. `task` must not be `Induction` (that prompt needs a
/// program, see [`propose_induction_prompt`]); it is treated as deduction if it is.
pub fn propose_triplet_prompt(
    task: TaskType,
    references: &[Triplet],
    banned_words: &[String],
    single_function: bool,
) -> Prompt {
    let (goal, difficulty) = match task {
        TaskType::Abduction => (
            "find an input that produces a given output",
            "How hard it is to find your ```input``` given only 1) your ```python``` program \
             and 2) the ```output``` your input produces",
        ),
        _ => (
            "predict the output for a given input",
            "How hard it is to predict the ```output``` from your ```python``` program and \
             your ```input```",
        ),
    };
    let asks = match task {
        TaskType::Abduction => {
            "The program will be run on your input; a test-taker will then see the program and \
             the resulting output and must come up with an input that produces that output"
        }
        _ => {
            "The program will be run on your input; a test-taker will then see the program and \
             the input and must predict the output"
        }
    };
    let body = format!(
        "\n## Task: Write a New Python Program and One Input for It\n\n\
         Taking the reference programs below as examples, write a new and different Python \
         program for which it takes careful algorithmic reasoning to {goal}. Give the program \
         and one input for it. {asks}. It is a reasoning test.\n\n\
         {requirements}\n\
         ### Input requirements:\n\
         - Give exactly one input for your function\n\
         - Separate multiple arguments with commas\n\
         - Put quotes around string arguments\n\n\
         ### Formatting:\n\
         - Write your program as:\n\
         ```python\ndef f(...):\n    # your code\n    return ...\n```\n\
         - Write your input as:\n\
         ```input\narg1, arg2, ...\n```\n\n\
         ### Example format:\n\
         ```python\ndef f(name: str, record: dict):\n    # program logic\n    return result\n```\n\n\
         ```input\n{EXAMPLE_INPUT}\n```\n\n\
         ### How your task is judged:\n\
         - It runs: your program must execute on your input\n\
         - {difficulty}. Aim for algorithmic depth or intricate logic: for example data \
         structures such as trees, heaps, stacks, queues or graphs, or control flow such as \
         dynamic programming, recursion, divide and conquer, greedy choices or backtracking\n\
         - Originality: it must differ clearly from the reference programs\n\
         - Some words are off limits: do not write any of these anywhere, not even in \
         comments: {banned}\n\n\
         First make a plan: how your program will be hard, and how it differs from the \
         references. Then write the program and its input.\n\n\
         ### Reference Code Snippets:\n{references}\n",
        requirements = code_requirements(single_function),
        banned = banned_words.join(", "),
        references = format_references(references),
    );
    Prompt::user(wrap(&body))
}

/// The proposer's prompt for a deduction or abduction task in `style`. The brief one shows
/// the reference programs with their inputs and asks for one new small function and one
/// input, each in its fenced block and nothing else: a 0.5B model given the reference's
/// prompt writes prose about a program instead of one.
pub fn propose_triplet_prompt_in(
    style: PromptStyle,
    task: TaskType,
    references: &[Triplet],
    banned_words: &[String],
    single_function: bool,
) -> Prompt {
    if style == PromptStyle::Reference {
        return propose_triplet_prompt(task, references, banned_words, single_function);
    }
    let mut shown = String::new();
    for r in references {
        shown.push_str(&format!(
            "```python\n{}\n```\n```input\n{}\n```\n\n",
            r.program, r.input
        ));
    }
    Prompt::user(format!(
        "Here are small Python functions named `f`, each with an input:\n\n{shown}\
         Write one new small Python function named `f`, different from these, that returns a \
         value computed from its arguments, and one input for it. Use plain Python: no \
         imports, no printing, no randomness. Reply with only the function in a ```python \
         block and the input (its arguments, separated by commas) in an ```input block."
    ))
}

/// The placeholder shown after the program in the induction propose prompt.
pub const INPUT_PLACEHOLDER: &str = "f(<|YOUR INPUT WILL BE PLUGGED HERE|>)";

/// The proposer's prompt for an induction (`code_f`) task: inputs for a buffered program and
/// a message for the solver.
pub fn propose_induction_prompt(program: &str, num_inputs: usize) -> Prompt {
    let body = format!(
        "\n## Task: Write {num_inputs} Inputs for the Program Below, and a Message about It\n\n\
         Write {num_inputs} inputs for the program below that make it produce a varied set of \
         outputs. A test-taker will be shown some of your inputs with the outputs they produce \
         and must work out the program from them. You may also leave the test-taker a message \
         to help.\n\n\
         ### Input requirements:\n\
         - Give {num_inputs} valid inputs for the program\n\
         - In each input, separate multiple arguments with commas\n\
         - Put quotes around string arguments\n\
         - Wrap each input in its own ```input``` block\n\n\
         ### Message requirements:\n\
         - Leave the test-taker a message that helps them work out the program\n\
         - Wrap the message in a ```message``` block\n\
         - The message may take any form: a coding question, or a plain description of what \
         the program does\n\
         - Do not put the program itself in the message\n\n\
         ### Formatting:\n\
         - Write each input as:\n\
         ```input\narg1, arg2, ...\n```\n\n\
         ### Example format:\n\
         ```input\n{EXAMPLE_INPUT}\n```\n\
         ```input\n{EXAMPLE_INPUT_2}\n```\n\n\
         ### How your task is judged:\n\
         - It runs: the program must execute on every input\n\
         - Coverage: together, the inputs and outputs should span the program's input space \
         well enough to recover the program from them\n\
         - Variety: the inputs should differ clearly from one another\n\
         - The inputs and message together should make the task hard for the test-taker, but \
         not impossible\n\
         First make a plan: understand the program, then decide how your inputs cover it and \
         why they are hard and varied. Then write the inputs and the message. Remember: each \
         input in ```input``` tags, the message in ```message``` tags.\n\n\
         ### Code Snippet:\n```python\n{program}\n{INPUT_PLACEHOLDER}\n```\n"
    );
    Prompt::user(wrap(&body))
}

/// The solver's prompt for a task.
pub fn solve_prompt(task: &SolveTask) -> Prompt {
    let body = match task {
        SolveTask::Deduction(t) => deduction_body(t),
        SolveTask::Abduction(t) => abduction_body(t),
        SolveTask::Induction(t) => induction_body(t),
    };
    Prompt::user(wrap(&body))
}

/// How the solver is asked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptStyle {
    /// The reference's: the `<think> … </think> <answer> … </answer>` layout, answers in
    /// fenced blocks, an example value.
    #[default]
    Reference,
    /// For small models: the question asked plainly, a few short lines of working, then the
    /// bare answer between `<answer>` tags. There is no example value (a 0.5B model copies
    /// it) and no one-word layout to imitate (it converges to `<think> reasoning </think>`).
    /// Induction tasks keep the reference's wording.
    Brief,
}

impl PromptStyle {
    pub fn name(self) -> &'static str {
        match self {
            PromptStyle::Reference => "reference",
            PromptStyle::Brief => "brief",
        }
    }

    /// Whether `response` (the model's text after the prompt) is in this style's layout:
    /// the reference's `<think>`/`<answer>` rule, or for brief prompts an `<answer>` tag
    /// that closes.
    pub fn layout_ok(self, response: &str) -> bool {
        match self {
            PromptStyle::Reference => {
                crate::parse::format_ok(&crate::parse::generation_text(response))
            }
            PromptStyle::Brief => response
                .rsplit_once("<answer>")
                .is_some_and(|(_, tail)| tail.contains("</answer>")),
        }
    }
}

impl std::str::FromStr for PromptStyle {
    type Err = crate::AzrError;

    fn from_str(s: &str) -> Result<Self, crate::AzrError> {
        match s {
            "reference" => Ok(PromptStyle::Reference),
            "brief" => Ok(PromptStyle::Brief),
            other => Err(crate::AzrError::Config(format!(
                "unknown prompt style `{other}` (expected reference or brief)"
            ))),
        }
    }
}

/// The solver's prompt for a task in `style`.
pub fn solve_prompt_in(task: &SolveTask, style: PromptStyle) -> Prompt {
    match (style, task) {
        (PromptStyle::Brief, SolveTask::Deduction(t)) => Prompt::user(format!(
            "Here is a Python function:\n\n```python\n{}\n```\n\nWhat does `f({})` return? \
             Work it out in a few short lines, then write only the returned value, as a Python \
             literal, between <answer> and </answer>.",
            t.program, t.input
        )),
        (PromptStyle::Brief, SolveTask::Abduction(t)) => Prompt::user(format!(
            "Here is a Python function:\n\n```python\n{}\n```\n\nFind arguments for `f` so \
             that it returns `{}`. Work it out in a few short lines, then write only the \
             arguments, as Python literals separated by commas (without `f(` and `)`), between \
             <answer> and </answer>.",
            t.program, t.output
        )),
        _ => solve_prompt(task),
    }
}

fn deduction_body(t: &Triplet) -> String {
    format!(
        "\n# Task: Predict the Output of a Python Program for a Given Input\n\
         Read the program and the input below, reason step by step about what the program does \
         with that input, and give the value it returns. Put the output in ```output``` tags. \
         Write strings with their quotes; if the function returns several values, write them \
         as a tuple.\n\n\
         # Code Snippet:\n```python\n{}\n```\n\n\
         # Input:\n```input\n{}\n```\n\n\
         # Example answer:\n```output\n{EXAMPLE_OUTPUT}\n```\n",
        t.program, t.input
    )
}

fn abduction_body(t: &Triplet) -> String {
    format!(
        "\n# Task: Find an Input of a Python Program that Produces a Given Output\n\
         Read the program and the output below, reason step by step, and give one input that \
         makes the program return that output. Put the input in ```input``` tags. Write \
         strings with their quotes, and separate several arguments with commas.\n\n\
         # Code Snippet:\n```python\n{}\n```\n\n\
         # Output:\n```output\n{}\n```\n\n\
         # Answer format:\n```input\narg1, arg2, ...\n```\n\
         # Example answer:\n```input\n{EXAMPLE_INPUT}\n```\n",
        t.program, t.output
    )
}

fn induction_body(t: &InductionTask) -> String {
    let mut pairs = String::new();
    for (i, (input, output)) in t.given().into_iter().enumerate() {
        pairs.push_str(&format!(
            "```input_{i}\n{input}\n```\n```output_{i}\n{output}\n```\n"
        ));
    }
    format!(
        "\n# Task: Recover the Function Behind a Set of Inputs and Outputs\n\
         Below are inputs, the outputs a hidden Python function returned for them, and a \
         message from the function's author. Reason step by step and write a function that \
         produces these outputs from these inputs; it will also be tested on inputs you do not \
         see. Checking your function against each pair helps; if it fails one, fix it. Put \
         your final function in ```python``` tags: that block is what gets tested.\n\n\
         # Program requirements:\n\
         - Name the entry function `f` (`def f(...): ...`)\n\
         - `f` must return a value\n\
         - `f` takes at least one argument\n\
         - `f` must be deterministic\n\
         - Do NOT use:\n  \
         * random numbers or random choices\n  \
         * dates or times\n  \
         * input/output (files, network)\n  \
         * printing or logging\n  \
         * any state outside the program\n\
         - It must finish within 10 seconds on an ordinary CPU\n\
         - Put all imports and class definitions at the very top of the program\n\
         - The program ends with the `return` of `f()`; anything after it is dropped\n\n\
         # Input and Output Pairs:\n{pairs}\n\
         # Message:\n```message\n{message}\n```\n\n\
         # Example answer:\n```python\ndef f(a):\n    return a\n```\n\n\
         The entry function must be named `f()`!\n",
        message = t.message
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arithmetic() -> Triplet {
        Triplet {
            program: "def f(x):\n    return x + 3".into(),
            input: "4".into(),
            output: "7".into(),
            imports: vec![],
        }
    }

    #[test]
    fn a_brief_prompt_asks_plainly_with_no_value_to_copy_and_no_think_layout() {
        for task in [
            SolveTask::Deduction(arithmetic()),
            SolveTask::Abduction(arithmetic()),
        ] {
            let text = solve_prompt_in(&task, PromptStyle::Brief).plain_text();
            assert!(text.contains("def f(x):\n    return x + 3"));
            assert!(text.contains("<answer> and </answer>"));
            assert!(!text.contains("<think>"), "{text}");
            assert!(!text.contains(EXAMPLE_INPUT) && !text.contains(EXAMPLE_OUTPUT));
        }
        let deduction = solve_prompt_in(&SolveTask::Deduction(arithmetic()), PromptStyle::Brief);
        assert!(deduction.plain_text().contains("`f(4)`"));
        let abduction = solve_prompt_in(&SolveTask::Abduction(arithmetic()), PromptStyle::Brief);
        assert!(abduction.plain_text().contains("returns `7`"));
    }

    #[test]
    fn a_brief_propose_prompt_shows_the_references_with_their_inputs_and_no_layout() {
        let refs = [arithmetic()];
        let text =
            propose_triplet_prompt_in(PromptStyle::Brief, TaskType::Deduction, &refs, &[], true)
                .plain_text();
        assert!(text.contains("```python\ndef f(x):\n    return x + 3\n```\n```input\n4\n```"));
        assert!(
            !text.contains("<think>") && !text.contains("<answer>"),
            "{text}"
        );
        assert_eq!(
            propose_triplet_prompt_in(
                PromptStyle::Reference,
                TaskType::Deduction,
                &refs,
                &[],
                true
            ),
            propose_triplet_prompt(TaskType::Deduction, &refs, &[], true)
        );
    }

    #[test]
    fn the_reference_style_is_the_reference_prompt() {
        let task = SolveTask::Deduction(arithmetic());
        assert_eq!(
            solve_prompt_in(&task, PromptStyle::Reference),
            solve_prompt(&task)
        );
    }

    #[test]
    fn a_brief_answer_is_in_layout_when_its_answer_tag_closes() {
        assert!(PromptStyle::Brief.layout_ok("x is 4, so 7.\n<answer>7</answer>"));
        assert!(!PromptStyle::Brief.layout_ok("x is 4, so <answer>7"));
        assert!(!PromptStyle::Brief.layout_ok("7"));
        assert!(!PromptStyle::Reference.layout_ok("<answer>7</answer>"));
        assert!(PromptStyle::Reference.layout_ok(" add 3 </think> <answer>7</answer>"));
    }
    use crate::config::BANNED_WORDS;
    use crate::parse;

    fn banned() -> Vec<String> {
        BANNED_WORDS.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn prompts_are_one_user_message_ending_in_an_open_think_tag() {
        let p =
            propose_triplet_prompt(TaskType::Deduction, &[Triplet::identity()], &banned(), true);
        assert_eq!(p.messages.len(), 1);
        assert_eq!(p.pairs()[0].0, "user");
        assert!(p.plain_text().ends_with("\nAssistant: <think>"));
        // The only `Assistant:` is the last one: the reference cuts the generation there.
        assert_eq!(p.plain_text().matches("Assistant:").count(), 1);
    }

    #[test]
    fn references_are_formatted_as_numbered_snippets() {
        let refs = [Triplet::identity(), Triplet::identity()];
        let text = format_references(&refs);
        assert_eq!(
            text.lines().take(11).collect::<Vec<_>>(),
            [
                "<snippet_0>",
                "```python",
                "def f(a):",
                "    return a",
                "```",
                "```input",
                "\"Hello world\"",
                "```",
                "```output",
                "\"Hello world\"",
                "```"
            ]
        );
        assert!(text.contains("</snippet_0>\n<snippet_1>\n"));
        let p = propose_triplet_prompt(TaskType::Abduction, &refs, &banned(), true);
        assert!(
            p.plain_text()
                .contains(&format!("### Reference Code Snippets:\n{text}"))
        );
        assert!(p.plain_text().contains("logging, random, multiprocessing"));
    }

    #[test]
    fn deduction_and_abduction_propose_prompts_differ_in_what_is_hard() {
        let d = propose_triplet_prompt(TaskType::Deduction, &[], &banned(), true).plain_text();
        let a = propose_triplet_prompt(TaskType::Abduction, &[], &banned(), true).plain_text();
        assert!(d.contains("predict the output for a given input"));
        assert!(a.contains("find an input that produces a given output"));
        assert!(d.contains("no nested function"));
        let lenient = propose_triplet_prompt(TaskType::Deduction, &[], &banned(), false);
        assert!(lenient.plain_text().contains("may be nested"));
    }

    #[test]
    fn induction_propose_prompt_shows_the_program_with_the_placeholder() {
        let p = propose_induction_prompt("def f(a):\n    return a", 10).plain_text();
        assert!(p.contains("Write 10 inputs"));
        assert!(p.contains(
            "```python\ndef f(a):\n    return a\nf(<|YOUR INPUT WILL BE PLUGGED HERE|>)\n```"
        ));
    }

    #[test]
    fn solve_prompts_show_what_each_type_gives() {
        let t = Triplet {
            program: "def f(x):\n    return x * 2".into(),
            input: "21".into(),
            output: "42".into(),
            imports: vec![],
        };
        let d = solve_prompt(&SolveTask::Deduction(t.clone())).plain_text();
        assert!(d.contains("```input\n21\n```"));
        assert!(!d.contains("42"));
        let a = solve_prompt(&SolveTask::Abduction(t)).plain_text();
        assert!(a.contains("```output\n42\n```"));
        assert!(!a.contains("```input\n21"));
        let i = solve_prompt(&SolveTask::Induction(InductionTask::identity())).plain_text();
        assert!(
            i.contains("```input_0\n\"Hello world\"\n```\n```output_0\n\"Hello world\"\n```\n")
        );
        assert!(i.contains("```input_2\n"));
        // Held-out pairs are not shown.
        assert!(!i.contains("```input_3"));
        assert!(!i.contains("1001101100010001"));
        assert!(i.contains("```message\nWrite a function that returns whatever you input\n```"));
    }

    #[test]
    fn a_model_following_the_example_format_parses() {
        // The example in the propose prompt, answered literally, is a valid proposal.
        let answer = format!(
            "```python\ndef f(name: str, record: dict):\n    return name\n```\n\n```input\n{EXAMPLE_INPUT}\n```"
        );
        let p = parse::parse_triplet_proposal(&answer, &Default::default()).expect("parses");
        assert_eq!(p.input, EXAMPLE_INPUT);
    }
}
