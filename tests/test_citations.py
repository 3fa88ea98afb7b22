"""Source markers added to an answer the model wrote without them: the passage it drew on is cited; a refusal or a
guess that shares too little with every passage is not."""

from __future__ import annotations

from qwen_agent.agents.citations import best_sources, cite
from qwen_agent.retrieval import Hit

HANDBOOK = Hit(text="Every employee gets 28 days of paid holiday per calendar year. Unused days expire in March.",
               source="handbook.md", path="/docs/handbook.md", citation="[handbook.md]")
TRAVEL = Hit(text="Trains are booked in second class; flights over 6 hours may be booked in premium economy.",
             source="travel.md", path="/docs/travel.md", citation="[travel.md]")


def test_an_answer_drawn_from_a_passage_cites_it() -> None:
    answer = "Every employee gets 28 days of paid holiday per year."
    assert cite(answer, [TRAVEL, HANDBOOK]) == f"{answer} [handbook.md]"


def test_a_terse_answer_made_of_the_passage_words_and_a_number_is_cited() -> None:
    assert cite("28 days", [TRAVEL, HANDBOOK]) == "28 days [handbook.md]"
    assert cite("6 hours.", [TRAVEL, HANDBOOK]) == "6 hours. [travel.md]"


def test_a_terse_answer_with_a_word_the_passages_lack_or_no_number_is_not_cited() -> None:
    assert cite("30 days", [HANDBOOK]) == "30 days"  # the number is not in the passage: a guess
    assert cite("28 weeks", [HANDBOOK]) == "28 weeks"
    assert cite("Paid holiday", [HANDBOOK]) == "Paid holiday"  # no number: too little to tell
    assert cite("28", [HANDBOOK]) == "28"  # one word


def test_a_refusal_is_not_cited_and_a_cited_answer_is_left_alone() -> None:
    assert best_sources("I could not find that in the documents.", [HANDBOOK, TRAVEL]) == []
    assert cite("It is 28 days [handbook.md].", [HANDBOOK]) == "It is 28 days [handbook.md]."
