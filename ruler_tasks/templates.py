"""RULER v1's prompt strings, reproduced exactly: they are the benchmark's definition (NOTICE credits RULER).

Sources in NVIDIA/RULER at revision `ruler_tasks.RULER_REVISION` (c3f5e3b4f87f97e048793bb510a3a6b19a46bf3a):
scripts/data/synthetic/constants.py (task templates, answer prefixes, and the tokens_to_generate
defaults), scripts/data/synthetic/niah.py (the needle sentence and the noise line),
scripts/data/synthetic/variable_tracking.py (the assignment lines, hops with a trailing space),
scripts/data/synthetic/qa.py (the document format). Spelling is RULER's at that revision (its VT
answer prefix now says "assigned"; older revisions said "assgined"). Every template has one `{context}`
slot; the answer prefix is kept apart from the template because the sample stores it separately
(docs/ARCHITECTURE.md section 3).
"""

NIAH_TEMPLATE = (
    "Some special magic {type_needle_v} are hidden within the following text. Make sure to memorize it. "
    "I will quiz you about the {type_needle_v} afterwards.\n{context}\n"
    "What are all the special magic {type_needle_v} for {query} mentioned in the provided text?"
)
NIAH_ANSWER_PREFIX = " The special magic {type_needle_v} for {query} mentioned in the provided text are"
NIAH_NEEDLE = "One of the special magic {type_needle_v} for {key} is: {value}."
NOISE_LINE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
VT_FIRST = "VAR {name} = {value}"
VT_HOP = "VAR {name} = VAR {previous} "  # RULER's hop lines end with a space

VT_TEMPLATE = (
    "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n{context}\n"
    "Question: Find all variables that are assigned the value {query} in the text above."
)
VT_ANSWER_PREFIX = (
    " Answer: According to the chain(s) of variable assignment in the text above, {num_v} variables are "
    "assigned the value {query}, they are: "
)

CWE_TEMPLATE = (
    "Below is a numbered list of words. In these words, some appear more often than others. "
    "Memorize the ones that appear most often.\n{context}\n"
    "Question: What are the 10 most common words in the above list?"
)
CWE_ANSWER_PREFIX = " Answer: The top 10 words that appear most often in the list are:"

FWE_TEMPLATE = (
    "Read the following coded text and track the frequency of each coded word. Find the three most "
    "frequently appeared coded words. {context}\n"
    "Question: Do not provide any explanation. Please ignore the dots '....'. What are the three most "
    "frequently appeared words in the above coded text?"
)
FWE_ANSWER_PREFIX = (
    " Answer: According to the coded text above, the three most frequently appeared words are:"
)

QA_TEMPLATE = (
    "Answer the question based on the given documents. Only give me the answer and do not output any "
    "other words.\n\nThe following are given documents.\n\n{context}\n\n"
    "Answer the question based on the given documents. Only give me the answer and do not output any "
    "other words.\n\nQuestion: {query}"
)
QA_ANSWER_PREFIX = " Answer:"
QA_DOCUMENT = "Document {i}:\n{document}"


def singular(text: str) -> str:
    """RULER's rewrite of a NIAH template when one value is asked for (num_needle_q * num_needle_v == 1).
    RULER applies it to the whole template: the chat template around the task and the answer prefix too."""
    return text.replace("Some", "A").replace("are all", "is").replace("are", "is").replace("answers", "answer")
