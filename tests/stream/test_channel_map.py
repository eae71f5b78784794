"""Channel matching: prefix / reference stripping, old 10-20 names, peripheral aliases, the match report."""

from __future__ import annotations

import pytest

from symaffect.errors import DataError
from symaffect.spec import DEAP_CHANNELS, EEG_CHANNELS
from symaffect.stream.channel_map import ChannelMap, load_channel_map

PERIPHERAL_NAMES = {  # a clinical EDF / MNE montage's peripheral names -> DEAP's
    "EOG hEOG-REF": "hEOG", "EOG vEOG-REF": "vEOG", "EMG zEMG": "zEMG", "EMG tEMG": "tEMG",
    "EDA": "GSR", "Resp": "Resp", "PPG": "BVP", "TEMP": "Temp",
}


def test_eeg_ref_montage_resolves_all_40():
    names = [f"EEG {c}-REF" for c in EEG_CHANNELS] + list(PERIPHERAL_NAMES)
    report = load_channel_map("default").match(names + ["ECG II", "Status"])
    assert report.mapping == {**{f"EEG {c}-REF": c for c in EEG_CHANNELS}, **PERIPHERAL_NAMES}
    assert sorted(report.mapping.values()) == sorted(DEAP_CHANNELS) and report.missing == ()
    assert report.notes == ["ECG II: no DEAP channel (DEAP has no ECG); ignored", "Status: trigger channel"]


@pytest.mark.parametrize(("name", "target"), [
    ("EEG Fp1-REF", "Fp1"), ("EEG FP1-LE", "Fp1"), ("Fp1-A1", "Fp1"), ("Fp1-Ref", "Fp1"), ("POL Fp1", "Fp1"),
    ("eeg fp1-ref", "Fp1"), ("Fp1.", "Fp1"), ("EEG Cz-AVG", "Cz"), ("FP1-M2", "Fp1"), ("EEG:Pz", "Pz"),
    ("T3", "T7"), ("T4", "T8"), ("T5", "P7"), ("T6", "P8"), ("EEG T3-REF", "T7"), ("POL t6", "P8"),
    ("EDA", "GSR"), ("Skin conductance", "GSR"), ("GSR1", "GSR"), ("PPG", "BVP"), ("Pleth", "BVP"),
    ("Plethysmograph", "BVP"), ("RESP", "Resp"), ("Respiration", "Resp"), ("TEMP", "Temp"),
    ("Temperature", "Temp"), ("HEOG", "hEOG"), ("EOG H", "hEOG"), ("VEOG", "vEOG"), ("EOG-V", "vEOG"),
    ("EMG zygomaticus", "zEMG"), ("EMG Trapezius", "tEMG"), ("POL EDA", "GSR"),
])
def test_default_map_names(name, target):
    assert load_channel_map("default").match([name]).mapping == {name: target}


@pytest.mark.parametrize(("name", "why"), [
    ("Fp1-F7", "not in channel map 'default'"),  # a bipolar derivation is not an electrode
    ("EEG", "electrode position unknown"),
    ("EMG1", "muscle unknown"),
    ("A1", "not in channel map 'default'"),  # BioSemi's label, not Fp1
    ("EKG", "no DEAP channel"),
])
def test_default_map_leaves_out(name, why):
    report = load_channel_map("default").match([name])
    assert report.mapping == {} and report.left_out[0].source == name and why in report.notes[0]


def test_eeg_map_aliases_and_stripping_only_eeg():
    m = load_channel_map("eeg").match(["EEG T3-REF", "EEG T4-REF", "T5", "POL T6", "EEG Fp1-LE", "EDA"])
    assert m.mapping == {"EEG T3-REF": "T7", "EEG T4-REF": "T8", "T5": "P7", "POL T6": "P8", "EEG Fp1-LE": "Fp1"}
    assert m.notes == ["EDA: not in channel map 'eeg'; ignored"]


def test_match_report_contents():
    report = load_channel_map("default").match(["EEG T3-REF", "EEG T7-REF", "PPG", "Fp1", "ECG"])
    assert [(e.source, e.target, e.how) for e in report.entries] == [
        ("EEG T3-REF", "T7", "rule 'T3' after stripping to 'T3'"),
        ("EEG T7-REF", None, "T7 already taken by EEG T3-REF; ignored"),
        ("PPG", "BVP", "rule 'PPG*'"),
        ("Fp1", "Fp1", "identity"),
        ("ECG", None, "no DEAP channel (DEAP has no ECG); ignored"),
    ]
    d = report.to_dict()
    assert d["map"] == "default"
    assert d["matched"][0] == {"source": "EEG T3-REF", "target": "T7", "how": "rule 'T3' after stripping to 'T3'"}
    assert d["left_out"] == [{"source": "EEG T7-REF", "why": "T7 already taken by EEG T3-REF; ignored"},
                             {"source": "ECG", "why": "no DEAP channel (DEAP has no ECG); ignored"}]
    assert len(d["missing"]) == 40 - 3 and "T7" not in d["missing"] and "Fz" in d["missing"]
    text = str(report).splitlines()
    assert text[0] == "channel map 'default': 3 of 5 channels matched"
    assert "  EEG T3-REF -> T7 (rule 'T3' after stripping to 'T3')" in text
    assert "  ECG: left out (no DEAP channel (DEAP has no ECG); ignored)" in text
    assert report.summary().startswith("channel map 'default': 3 of 5 channels matched; renamed EEG T3-REF->T7, PPG->BVP")
    # resolve() is the short form and keeps its old notes
    assert load_channel_map("default").resolve(["EEG T3-REF", "ECG"]) == (
        {"EEG T3-REF": "T7"}, ["ECG: no DEAP channel (DEAP has no ECG); ignored"])


def test_yaml_prefixes_and_references(tmp_path):
    p = tmp_path / "m.yaml"
    p.write_text("name: lab\nidentity: eeg\nprefixes: [Lab]\nreferences: [Nose]\nchannels: {Cheek: zEMG}\n")
    m = load_channel_map(p)
    assert m.prefixes == ("Lab",) and m.references == ("Nose",)
    assert m.match(["Lab Fz-Nose", "lab cheek", "EEG Fz-REF"]).mapping == {"Lab Fz-Nose": "Fz", "lab cheek": "zEMG"}
    # a user map without the keys strips nothing but trailing dots
    assert ChannelMap("plain", identity="eeg").match(["EEG Fz-REF", "Fz."]).mapping == {"Fz.": "Fz"}
    p.write_text("prefixes: EEG\n")
    with pytest.raises(DataError, match="'prefixes' must be a list of words"):
        load_channel_map(p)
    p.write_text("references: ['']\n")
    with pytest.raises(DataError, match="empty word"):
        load_channel_map(p)
