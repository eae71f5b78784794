"""The shared contract: DEAP's channel layout and one frozen spec per modality.

Both :mod:`symaffect.data` and :mod:`symaffect.models` read this module; neither
imports the other. A model takes ``{modality: Tensor(B, C, T)}`` where the channel
order of each tensor is :attr:`ModalitySpec.ch_names`.
"""

from __future__ import annotations

from dataclasses import dataclass

SFREQ = 128.0
"""Sampling rate of DEAP's preprocessed data (Hz)."""

N_TRIALS = 40
N_CHANNELS = 40
N_SAMPLES = 8064
"""63 s at 128 Hz: a 3-s pre-trial baseline, then the 60-s music video."""
BASELINE_SAMPLES = 384
WINDOW_SAMPLES = 1280
"""The paper's 10-s window at 128 Hz."""

EEG_CHANNELS: tuple[str, ...] = (
    "Fp1", "AF3", "F3", "F7", "FC5", "FC1", "C3", "T7", "CP5", "CP1", "P3", "P7",
    "PO3", "O1", "Oz", "Pz", "Fp2", "AF4", "Fz", "F4", "F8", "FC6", "FC2", "Cz",
    "C4", "T8", "CP6", "CP2", "P4", "P8", "PO4", "O2",
)
"""DEAP's EEG channels in the Geneva order of the preprocessed files (indices 0-31)."""

EEG_CHANNELS_TWENTE: tuple[str, ...] = (
    "Fp1", "AF3", "F7", "F3", "FC1", "FC5", "T7", "C3", "CP1", "CP5", "P7", "P3",
    "Pz", "PO3", "O1", "Oz", "O2", "PO4", "P4", "P8", "CP6", "CP2", "C4", "T8",
    "FC6", "FC2", "F4", "F8", "AF4", "Fp2", "Fz", "Cz",
)
"""EEG order of the raw BDF files recorded in Twente (s01-s22)."""

DEAP_CHANNELS: tuple[str, ...] = EEG_CHANNELS + (
    "hEOG", "vEOG", "zEMG", "tEMG", "GSR", "Resp", "BVP", "Temp",
)
"""All 40 channels of ``data_preprocessed_python/sNN.dat`` in file order."""

LABEL_COLUMNS: tuple[str, ...] = ("valence", "arousal", "dominance", "liking")
"""Columns of the ``labels`` array of a preprocessed file."""

CH_INDEX: dict[str, int] = {name: i for i, name in enumerate(DEAP_CHANNELS)}


@dataclass(frozen=True)
class ModalitySpec:
    """One modality of the model's input.

    Parameters
    ----------
    name : str
        Key of the modality in the ``{modality: Tensor(B, C, T)}`` mapping.
    ch_names : tuple of str
        Channel names, in the order of the tensor's C axis.
    ch_types : tuple of str
        MNE channel type of each channel (``"eeg"``, ``"eog"``, ``"emg"``, ``"gsr"``,
        ``"resp"``, ``"bio"``, ``"temperature"``).
    sfreq : float
        Sampling rate in Hz.
    n_times : int
        Window length in samples.
    """

    name: str
    ch_names: tuple[str, ...]
    ch_types: tuple[str, ...]
    sfreq: float = SFREQ
    n_times: int = WINDOW_SAMPLES

    @property
    def n_chans(self) -> int:
        return len(self.ch_names)

    @property
    def deap_indices(self) -> tuple[int, ...]:
        """Indices of this modality's channels in DEAP's 40-channel layout."""
        return tuple(CH_INDEX[c] for c in self.ch_names)


EEG = ModalitySpec("eeg", EEG_CHANNELS, ("eeg",) * 32)
PERIPHERAL = ModalitySpec(
    "peripheral",
    ("GSR", "BVP", "zEMG", "tEMG", "Resp", "Temp"),
    ("gsr", "bio", "emg", "emg", "resp", "temperature"),
)
"""The paper's six peripheral signals (GSR, BVP, zygomatic and trapezius EMG,
respiration, temperature), in the paper's order."""
EOG = ModalitySpec("eog", ("hEOG", "vEOG"), ("eog", "eog"))

MODALITIES: dict[str, ModalitySpec] = {m.name: m for m in (EEG, PERIPHERAL, EOG)}
"""The three modalities of the paper, by name."""

EEG_BANDS: dict[str, tuple[float, float]] = {
    "theta": (4.0, 8.0),
    "alpha": (8.0, 13.0),
    "beta": (13.0, 30.0),
    "gamma": (30.0, 45.0),
}
"""EEG bands used for band-power features and marked on figures (Hz)."""

TASKS: tuple[str, ...] = ("valence", "arousal", "liking")
"""The multi-task model's three 9-class targets."""
