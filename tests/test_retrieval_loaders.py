"""Loaders on generated files of every format, corrupt and encrypted files, and symlinks leaving the folder."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import retrieval_docgen as docgen

from qwen_agent.retrieval.discovery import discover
from qwen_agent.retrieval.errors import LoaderError
from qwen_agent.retrieval.loaders import load_document


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return docgen.write_corpus(tmp_path_factory.mktemp("docs"))


def test_pdf_pages_are_sections(corpus: dict[str, Path]) -> None:
    sections = load_document(corpus["zephyr_kettle_manual.pdf"])
    assert [s.page for s in sections] == [1, 2, 3]
    assert "94 seconds" in sections[0].text
    assert "80 degree setting" in sections[1].text


def test_docx_headings_and_tables(corpus: dict[str, Path]) -> None:
    sections = load_document(corpus["larkspur_handbook.docx"])
    by_heading = {s.heading: s.text for s in sections}
    assert "27 days of paid annual leave" in by_heading["Leave and Holidays"]
    assert "Kettering Bay | +44 1632 960123" in by_heading["Remote Work"]


def test_pptx_slides_with_titles(corpus: dict[str, Path]) -> None:
    sections = load_document(corpus["heron_roadmap.pptx"])
    assert [s.page for s in sections] == [1, 2, 3, 4, 5]
    assert sections[2].heading == "Q3: Species Recognition"
    assert "300 milliseconds" in sections[2].text
    assert "Q3: Species Recognition" not in sections[2].text  # the title is metadata, not repeated in the body


def test_markdown_heading_paths(corpus: dict[str, Path]) -> None:
    sections = load_document(corpus["brackenford_history.md"])
    flood = next(s for s in sections if "1794" in s.text)
    assert flood.heading == "Brackenford: A Short History > The Great Flood"


def test_markdown_ignores_hash_lines_in_code(tmp_path: Path) -> None:
    path = tmp_path / "code.md"
    path.write_text("# Title\n\nintro\n\n```bash\n# not a heading\necho hi\n```\n\n## Next\n\nbody\n")
    sections = load_document(path)
    assert [s.heading for s in sections] == ["Title", "Title > Next"]
    assert "# not a heading" in sections[0].text


def test_html_main_content_without_chrome(corpus: dict[str, Path]) -> None:
    sections = load_document(corpus["orion_valley_astronomy.html"])
    text = "\n".join(s.text for s in sections)
    assert "21 kilograms" in text
    assert "NAVSCRIPT" not in text and "All rights reserved" not in text
    assert any(s.heading and s.heading.endswith("Telescope Loans") for s in sections)


def test_csv_rows_keep_column_names(corpus: dict[str, Path]) -> None:
    (section,) = load_document(corpus["warehouse_inventory.csv"])
    assert "item: solar pond pump; aisle: C2; quantity: 8; supplier: Brightwater Pumps" in section.text


def test_xlsx_sheet_names(corpus: dict[str, Path]) -> None:
    sections = load_document(corpus["seed_prices.xlsx"])
    assert [s.sheet for s in sections] == ["Vegetables", "Flowers"]
    assert "variety: Ruby Moon sweet pea; price per packet: 3.20; sowing month: October" in sections[1].text


def test_txt_and_legacy_encoding(corpus: dict[str, Path], tmp_path: Path) -> None:
    assert "Gertrude" in load_document(corpus["maple_bakery_recipes.txt"])[0].text
    latin = tmp_path / "latin1.txt"
    french = (
        "La crème brûlée coûte quatre euros au café près de la façade du vieux théâtre. Le pâtissier "
        "prépare aussi des éclairs, des crêpes et une bûche de Noël très appréciée pendant les fêtes. "
        "Après le dîner, les clients préfèrent souvent un thé glacé ou un café crème bien sucré."
    )
    latin.write_bytes(french.encode("cp1252"))
    assert "crème brûlée coûte" in load_document(latin)[0].text


def test_encrypted_pdf_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "secret.pdf"
    docgen.write_encrypted_pdf(path)
    with pytest.raises(LoaderError) as info:
        load_document(path)
    assert info.value.kind == "encrypted"
    assert "password" in str(info.value)


def test_corrupt_files_are_clear_errors(tmp_path: Path) -> None:
    for path in docgen.write_corrupt_files(tmp_path):
        with pytest.raises(LoaderError) as info:
            load_document(path)
        assert info.value.kind == "corrupt", path
        assert path.name in str(info.value)


def test_empty_and_unsupported(tmp_path: Path) -> None:
    empty = tmp_path / "empty.md"
    empty.write_text("   \n\n")
    with pytest.raises(LoaderError, match="no extractable text"):
        load_document(empty)
    with pytest.raises(LoaderError, match="unsupported"):
        load_document(tmp_path / "picture.png")


def test_symlinks_out_of_the_folder_are_skipped(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "private.md").write_text("# Private\n\nsecret salary list")
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "sub" / "real.md").write_text("# Real\n\ninside text")
    (docs / "link_file.md").symlink_to(outside / "private.md")
    (docs / "link_dir").symlink_to(outside, target_is_directory=True)
    (docs / "inner_link.md").symlink_to(docs / "sub" / "real.md")
    (docs / ".hidden.md").write_text("hidden")
    found, errors, roots = discover([docs])
    assert sorted(f.source for f in found) == ["sub/real.md"]  # the inner link resolves to the same file
    assert sorted(Path(e.path).name for e in errors) == ["link_dir", "link_file.md"]
    assert all(e.kind == "outside_folder" for e in errors)
    assert roots == [docs.resolve()]
    found, errors, _ = discover([tmp_path / "nope"])
    assert not found and errors[0].kind == "missing"
