"""The demo's scenario, generated deterministically in code: a support assistant for *Nimbus Notes*,
a fictional note-taking app.

Everything comes from seeded `random.Random` instances (never `hash()`), so two runs write byte-for-
byte the same files: the rubric, a human seed set, two synthetic generators' files in different
styles, a broken generator's file (answers shuffled: the planted regression), the fixed eval set
with slices (clean, messy, edge_case), and the simulated production traffic, whose users write
short, misspelled, abbreviated messages and copy, resubmit or correct the answers. The ground truth
(each interaction's intent) stays with the scenario so a *simulated* reviewer can decide batches.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rapidfuzz import fuzz

PRODUCT = "Nimbus Notes"
SIMULATED_REVIEWER = "simulated-reviewer"

# One canned answer per intent (<= 80 chars, so byte-level generation stays quick).
ANSWERS: dict[str, str] = {
    "reset_password": "Go to Settings > Security > Reset password. We email you a link.",
    "cancel_subscription": "Go to Settings > Billing > Cancel plan. Access lasts to the period end.",
    "refund_policy": "Refunds are possible within 14 days: email billing@nimbus.example.",
    "export_data": "Go to Settings > Data > Export. You get a ZIP of Markdown files.",
    "change_email": "Go to Settings > Account > Email and confirm the link we send.",
    "delete_account": "Go to Settings > Account > Delete account. It is final after 30 days.",
    "sync_issue": "Sign out and back in. If notes still don't sync, update the app.",
    "upgrade_plan": "Go to Settings > Billing > Change plan. Pro is $8 per month.",
    "share_notebook": "Open the notebook, click Share and enter your teammate's email.",
    "two_factor": "Go to Settings > Security > Two-factor and scan the QR code.",
    "out_of_scope": "Nimbus Notes support covers accounts, billing, sync and sharing.",
}
INTENTS = [i for i in ANSWERS if i != "out_of_scope"]

# The core of a request, several phrasings per intent (clean spelling).
CORES: dict[str, list[str]] = {
    "reset_password": ["reset my password", "change my password", "recover my password",
                       "get a new password", "log in after forgetting my password", "reset the password on my account"],
    "cancel_subscription": ["cancel my subscription", "stop my subscription", "cancel my plan",
                            "end my subscription", "stop being charged every month", "cancel the monthly plan"],
    "refund_policy": ["get a refund", "get my money back", "request a refund for my payment",
                      "get refunded for this month", "get a refund for the annual plan", "ask for a refund"],
    "export_data": ["export my notes", "download all my notes", "export my data",
                    "get a backup of my notes", "move my notes to another app", "download my notebooks"],
    "change_email": ["change my email address", "update my email", "use a different email for my account",
                     "change the email I log in with", "switch my account email", "update my login email"],
    "delete_account": ["delete my account", "remove my account", "close my account for good",
                       "erase my account and data", "permanently delete my profile", "delete my user account"],
    "sync_issue": ["fix notes that do not sync", "get my notes to sync again", "fix sync between my phone and laptop",
                   "fix notes missing on my other device", "fix the sync error", "make my notes sync"],
    "upgrade_plan": ["upgrade to Pro", "change to a paid plan", "upgrade my plan",
                     "get more storage with Pro", "switch to the Pro plan", "buy the Pro plan"],
    "share_notebook": ["share a notebook", "share notes with my team", "invite a colleague to a notebook",
                       "give someone access to my notebook", "collaborate on a notebook", "share my notebook with a friend"],
    "two_factor": ["turn on two-factor authentication", "set up 2FA", "enable two-factor login",
                   "add an authenticator app", "secure my account with two-factor", "activate two-step verification"],
}
OUT_OF_SCOPE = ["what is the weather tomorrow", "write me a poem about cats", "who won the game last night",
                "what is the capital of France", "recommend a good movie", "help me with my math homework",
                "translate hello into Spanish", "tell me a joke"]

# Abbreviations real users type (cycle 2's reviewed traffic teaches them; seed/synthetic never use them).
ABBREVIATIONS: dict[str, list[str]] = {
    "password": ["pw", "pwd", "passwrd", "pasword"],
    "subscription": ["sub", "subscr", "subscripton"],
    "account": ["acct", "acc", "accnt"],
    "please": ["pls", "plz"],
    "you": ["u"],
    "my": ["my", "ma"],
    "notes": ["nts", "notez", "notes"],
    "notebook": ["nb", "notebok"],
    "refund": ["refnd", "refund", "refound"],
    "cancel": ["cancl", "cancle"],
    "export": ["exprt", "xport"],
    "delete": ["delet", "del"],
    "email": ["mail", "e-mail", "emial"],
    "upgrade": ["upgrde", "upgrd"],
    "two-factor": ["2fa", "2 factor"],
    "authentication": ["auth"],
    "sync": ["sync", "synk", "snyc"],
    "share": ["shre", "share"],
    "with": ["w/"],
    "how do i": ["how 2", "hw do i", "howto", "how do i"],
    "i": ["i", "i"],
}

CLEAN_OPENERS = ["How do I {c}?", "How can I {c}?", "I want to {c}.", "Can you help me {c}?",
                 "Hi, how do I {c}?", "What is the way to {c}?", "Please tell me how to {c}.", "Where can I {c}?"]
# generator A: polite, complete sentences; generator B: terse, search-like
STYLE_A = ["Hello! Could you please explain how I can {c}?", "Good morning, I would like to {c}. What are the steps?",
           "Could you walk me through how to {c}?", "I would appreciate help: how do I {c}?",
           "Dear support, I need to {c}. How does that work?", "Would you tell me the steps to {c}?"]
STYLE_B = ["{c}?", "how to {c}", "need to {c}", "{c} - how", "steps to {c}?", "way to {c}"]
MESSY_OPENERS = ["how do i {c}", "{c}", "pls {c}", "cant {c}", "need {c} asap", "{c}??", "hw do i {c}", "{c} pls"]


@dataclass(frozen=True)
class ScenarioSize:
    """How big the scenario is: the full demo, or a reduced one for the end-to-end test."""

    seed_per_intent: int = 4
    synthetic_per_intent: int = 10  # per generator
    broken_per_intent: int = 10
    eval_clean: int = 65  # the guide's 100-200: the full eval set uses most of it, so the intervals narrow
    eval_messy: int = 70
    eval_edge: int = 55
    traffic_days: int = 5
    traffic_per_day: int = 60
    batch_size: int = 100
    min_examples: int = 200  # the guide's floor; the reduced test scenario lowers it
    admission_sample: int = 100  # rows of each synthetic file a reviewer checks before it may train
    seed_replicates: int = 1  # per candidate: the training-seed noise the gate widens its intervals by


FULL = ScenarioSize()
SMALL = ScenarioSize(seed_per_intent=3, synthetic_per_intent=4, broken_per_intent=8, eval_clean=40, eval_messy=40,
                     eval_edge=34, traffic_days=3, traffic_per_day=60, batch_size=100,
                     min_examples=100, admission_sample=30)


def conversation(user: str, intent: str) -> list[dict[str, str]]:
    """A training/eval row: the user's message and the canonical answer (production sends no system prompt)."""
    return [{"role": "user", "content": user}, {"role": "assistant", "content": ANSWERS[intent]}]


def messify(text: str, rng: random.Random, typo_rate: float = 0.15) -> str:
    """What production users type: lower case, abbreviations, typos, little punctuation."""
    s = text.lower().rstrip(".?!")
    for phrase, subs in sorted(ABBREVIATIONS.items(), key=lambda kv: -len(kv[0])):
        if phrase in s and rng.random() < 0.8:
            s = re.sub(rf"\b{re.escape(phrase)}\b", rng.choice(subs), s)
    words = []
    for w in s.split():
        if len(w) > 3 and rng.random() < typo_rate:
            i = rng.randrange(len(w) - 1)
            op = rng.randrange(3)
            if op == 0:
                w = w[:i] + w[i + 1] + w[i] + w[i + 2:]  # swap
            elif op == 1:
                w = w[:i] + w[i + 1:]  # drop
            else:
                w = w[:i] + w[i] + w[i:]  # double
        words.append(w)
    s = " ".join(words)
    s = re.sub(r"\b(the|a|an|to)\b ", lambda m: "" if rng.random() < 0.4 else m.group(0), s)
    return s + rng.choice(["", "", "?", "??", " !"])


def _unique(items: Iterator[str], n: int, taken: set[str]) -> list[str]:
    out: list[str] = []
    for text in items:
        key = text.lower().strip()
        if key in taken:
            continue
        taken.add(key)
        out.append(text)
        if len(out) == n:
            break
    return out


def _phrasings(rng: random.Random, templates: list[str], cores: list[str]) -> Iterator[str]:
    for _ in range(5000):
        yield rng.choice(templates).format(c=rng.choice(cores))


def _edge_inputs(rng: random.Random, intent: str) -> Iterator[str]:
    """Edge cases: one word, shouting, extra details (order numbers, e-mail addresses), out of scope."""
    core = rng.choice(CORES[intent])
    key = core.split()[-1] if intent != "two_factor" else "2fa"
    kinds = [
        lambda: key + rng.choice(["?", "", "!!"]),
        lambda: core.upper() + "!!! NOW",
        lambda: f"order #{rng.randint(10000, 99999)}: {core}, my email is ana{rng.randint(1, 99)}@mail.example",
        lambda: f"{core} (tried twice, on android {rng.randint(9, 14)})",
    ]
    while True:
        yield rng.choice(kinds)()


@dataclass
class ScenarioFiles:
    """The rows of every file the demo project holds (ChatML rows; `generator` on synthetic rows)."""

    seed: list[dict[str, Any]]
    synthetic_a: list[dict[str, Any]]
    synthetic_b: list[dict[str, Any]]
    broken: list[dict[str, Any]]
    eval_set: list[dict[str, Any]]
    taken_inputs: set[str] = field(default_factory=set)
    truth: dict[str, str] = field(default_factory=dict)  # lower-cased input of every source row -> its intent


GENERATOR_A = "sim-gpt-polite-v1"
GENERATOR_B = "sim-llama-terse-v2"
GENERATOR_BROKEN = "sim-mixtral-batch-v0"


def build_files(size: ScenarioSize = FULL, seed: int = 7) -> ScenarioFiles:
    """Seed, synthetic and eval rows; no input repeats across files (the eval set stays uncontaminated)."""
    rng = random.Random(seed)
    taken: set[str] = set()
    eval_rows: list[dict[str, Any]] = []
    # the fixed eval set first, so training files can never contain its inputs
    per_intent = {
        "clean": size.eval_clean // len(INTENTS), "messy": size.eval_messy // len(INTENTS),
    }
    for intent in INTENTS:
        for text in _unique(_phrasings(rng, CLEAN_OPENERS, CORES[intent]), per_intent["clean"], taken):
            eval_rows.append({"messages": conversation(text, intent), "slice": "clean", "intent": intent})
        messy = (messify(t, rng) for t in _phrasings(rng, CLEAN_OPENERS + MESSY_OPENERS, CORES[intent]))
        for text in _unique(messy, per_intent["messy"], taken):
            eval_rows.append({"messages": conversation(text, intent), "slice": "messy", "intent": intent})
    edge_per_intent = max(1, (size.eval_edge - len(OUT_OF_SCOPE) // 2) // len(INTENTS))
    for intent in INTENTS:
        for text in _unique(_edge_inputs(rng, intent), edge_per_intent, taken):
            eval_rows.append({"messages": conversation(text, intent), "slice": "edge_case", "intent": intent})
    for text in OUT_OF_SCOPE[: len(OUT_OF_SCOPE) // 2]:
        taken.add(text.lower())
        eval_rows.append({"messages": conversation(text.capitalize() + "?", "out_of_scope"), "slice": "edge_case",
                          "intent": "out_of_scope"})

    truth: dict[str, str] = {}

    def rows(templates: list[str], n: int, generator: str | None) -> list[dict[str, Any]]:
        out = []
        for intent in INTENTS:
            for text in _unique(_phrasings(rng, templates, CORES[intent]), n, taken):
                truth[text.lower().strip()] = intent
                row: dict[str, Any] = {"messages": conversation(text, intent)}
                if generator:
                    row["generator"] = generator
                out.append(row)
        for text in OUT_OF_SCOPE[len(OUT_OF_SCOPE) // 2:]:
            phrased = rng.choice(templates).format(c=text)
            if phrased.lower().strip() not in taken:
                taken.add(phrased.lower().strip())
                truth[phrased.lower().strip()] = "out_of_scope"
                row = {"messages": conversation(phrased, "out_of_scope")}
                if generator:
                    row["generator"] = generator
                out.append(row)
        return out

    seed_rows = rows(CLEAN_OPENERS, size.seed_per_intent, None)
    synthetic_a = rows(STYLE_A, size.synthetic_per_intent, GENERATOR_A)
    synthetic_b = rows(STYLE_B, size.synthetic_per_intent, GENERATOR_B)
    # the planted regression: a generator whose batch job paired questions with the wrong answers
    broken = rows(CLEAN_OPENERS + STYLE_B, size.broken_per_intent, GENERATOR_BROKEN)
    answers = [r["messages"][-1]["content"] for r in broken]
    rotated = answers[len(answers) // 3:] + answers[: len(answers) // 3]
    for r, wrong in zip(broken, rotated, strict=True):
        r["messages"][-1] = {"role": "assistant", "content": wrong}
    return ScenarioFiles(seed_rows, synthetic_a, synthetic_b, broken, eval_rows, taken, truth)


# --- production traffic ----------------------------------------------------------------------
@dataclass
class Request:
    """One simulated production request (what the user typed) and its ground truth (the intent)."""

    interaction_id: str
    ts: datetime
    session_id: str
    user_id: str
    text: str
    intent: str
    latency_ms: float
    base: str  # the request's core, for a reworded resubmission


@dataclass
class Reaction:
    """What the user did after reading the answer: feedback events, and maybe a reworded resubmission."""

    right: bool
    feedback: list[dict[str, Any]]
    resubmission: Request | None = None


DRIFT_EDGE_SHARE = 0.6  # the Android launch week: device details, order numbers, e-mail addresses, shouting


def simulate_requests(day: str, size: ScenarioSize, seed: int = 11, taken: set[str] | None = None,
                      drift: bool = False) -> list[Request]:
    """One day of requests (UTC) from ~`traffic_per_day` users. Users write short, misspelled messages;
    15% are edge cases (one word, shouting, order numbers, e-mail addresses, device details), 60% in a
    drift week (the Android app launched and its users write like that)."""
    rng = random.Random(f"{seed}:{day}:{int(drift)}")
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    out: list[Request] = []
    n = size.traffic_per_day
    edge_share = DRIFT_EDGE_SHARE if drift else 0.15
    seconds = sorted(rng.randrange(7 * 3600, 23 * 3600) for _ in range(n))
    for k, sec in enumerate(seconds):
        intent = rng.choice(INTENTS) if rng.random() > 0.04 else "out_of_scope"
        base = rng.choice(CORES[intent]) if intent != "out_of_scope" else rng.choice(OUT_OF_SCOPE)
        roll = rng.random()
        if intent != "out_of_scope" and roll < edge_share:
            text = next(_edge_inputs(rng, intent))
        elif roll < edge_share + (1 - edge_share) * 0.7:
            text = messify(rng.choice(MESSY_OPENERS).format(c=base), rng)
        else:
            text = rng.choice(CLEAN_OPENERS).format(c=base)
        if taken is not None and text.lower().strip() in taken:
            text = f"{text} thx"
        out.append(Request(f"{day.replace('-', '')}-{k:04d}", start + timedelta(seconds=sec), f"s-{day}-{k:04d}",
                           f"u{rng.randrange(400):03d}", text, intent, round(rng.uniform(120, 900), 1), base))
    return out


def is_right(output: str, intent: str) -> bool:
    """Did the model give the intent's answer? (users and the simulated reviewer judge alike)"""
    return fuzz.ratio(output.strip(), ANSWERS[intent]) >= 90


def react(request: Request, output: str, seed: int = 11) -> Reaction:
    """The simulated user reads the model's answer: copies a right one (45%); after a wrong one resubmits a
    reworded request (45%), pastes the right answer as a correction (30%), or gives a thumbs down (15%)."""
    rng = random.Random(f"{seed}:{request.interaction_id}:react")
    iid, ts = request.interaction_id, request.ts
    if is_right(output, request.intent):
        feedback = [{"interaction_id": iid, "ts": ts + timedelta(seconds=rng.randint(3, 40)), "kind": "copy"}] \
            if rng.random() < 0.45 else []
        return Reaction(True, feedback)
    roll = rng.random()
    if roll < 0.45:
        again = messify(rng.choice(MESSY_OPENERS).format(c=request.base), rng)
        t2 = ts + timedelta(seconds=rng.randint(15, 90))
        return Reaction(False, [], Request(f"{iid}-r", t2, request.session_id, request.user_id, again, request.intent,
                                           round(rng.uniform(120, 900), 1), request.base))
    if roll < 0.75:
        return Reaction(False, [{"interaction_id": iid, "ts": ts + timedelta(seconds=rng.randint(20, 120)),
                                 "kind": "correction", "text": ANSWERS[request.intent]}])
    if roll < 0.9:
        return Reaction(False, [{"interaction_id": iid, "ts": ts + timedelta(seconds=rng.randint(5, 60)),
                                 "kind": "thumbs_down"}])
    return Reaction(False, [])


def truth_of(requests: list[Request]) -> dict[str, str]:
    """interaction_id -> intent (the ground truth the simulated reviewer decides from)."""
    return {r.interaction_id: r.intent for r in requests}


def review_verdict(input_text: str, output: str, intent: str | None) -> tuple[str, str | None]:
    """The simulated reviewer: pass a right answer, fix a wrong one with the canonical answer,
    reject what it cannot attribute to an intent. Returns (verdict, fixed answer or None)."""
    if intent is None or intent not in ANSWERS or not input_text.strip():
        return "reject", None
    if is_right(output, intent):
        return "pass", None
    return "fix", ANSWERS[intent]


def intent_of_answer(answer: str) -> str | None:
    """The intent whose canonical answer this is (None for anything else)."""
    return next((i for i, a in ANSWERS.items() if fuzz.ratio(answer.strip(), a) >= 90), None)


def sample_verdict(input_text: str, answer: str, truth: dict[str, str]) -> tuple[str, str | None]:
    """The simulated reviewer of a source file's admission sample: the row's question's intent comes
    from the scenario's ground truth (`truth`: normalised input -> intent); a right answer passes, a
    wrong one is rejected (a generator's wrong answer is not worth fixing), an unknown question too."""
    intent = truth.get(input_text.strip().lower())
    if intent is None:
        return "reject", None
    return ("pass", None) if is_right(answer, intent) else ("reject", None)


RUBRIC = f"""# Quality rubric: {PRODUCT} support assistant

## The five questions
1. Would I be proud to show this answer to a customer? One short, correct sentence.
2. Does the format match production exactly? No system prompt, one user turn, one answer turn.
3. Could this answer mislead? Never invent prices, policies or menu paths.
4. Is the input the kind production sends? Users write short, misspelled, abbreviated messages.
5. Would the model be better if it learned only from examples like this one?

## A perfect example
- Input: "how 2 reset ma pw"
- Answer: "{ANSWERS['reset_password']}"

## A bad example
- Input: "cancl sub pls"
- Answer: "{ANSWERS['upgrade_plan']}" (the wrong intent: the user wanted to cancel)

## Rules
- Length: one sentence, at most 80 characters.
- Always: give the exact menu path (Settings > ... > ...).
- Never: promise refunds outside the 14-day policy; answer questions about anything but {PRODUCT}.
"""
