"""General MIDI percussion (channel 10, keys 35-81): each key's instrument name and its family.

The families are what a drummer would call the parts of a kit: kick, snare, hi-hat, tom, cymbal, and percussion for
everything else (hand percussion, clap, cowbell, whistles, ...). Side stick counts as snare (it is played on the
snare's rim); hand clap as percussion (it is not a drum of the kit).
"""

from __future__ import annotations

GM_DRUM_NAMES = {
    35: "Acoustic Bass Drum", 36: "Bass Drum 1", 37: "Side Stick", 38: "Acoustic Snare", 39: "Hand Clap",
    40: "Electric Snare", 41: "Low Floor Tom", 42: "Closed Hi-Hat", 43: "High Floor Tom", 44: "Pedal Hi-Hat",
    45: "Low Tom", 46: "Open Hi-Hat", 47: "Low-Mid Tom", 48: "Hi-Mid Tom", 49: "Crash Cymbal 1", 50: "High Tom",
    51: "Ride Cymbal 1", 52: "Chinese Cymbal", 53: "Ride Bell", 54: "Tambourine", 55: "Splash Cymbal", 56: "Cowbell",
    57: "Crash Cymbal 2", 58: "Vibraslap", 59: "Ride Cymbal 2", 60: "Hi Bongo", 61: "Low Bongo", 62: "Mute Hi Conga",
    63: "Open Hi Conga", 64: "Low Conga", 65: "High Timbale", 66: "Low Timbale", 67: "High Agogo", 68: "Low Agogo",
    69: "Cabasa", 70: "Maracas", 71: "Short Whistle", 72: "Long Whistle", 73: "Short Guiro", 74: "Long Guiro",
    75: "Claves", 76: "Hi Wood Block", 77: "Low Wood Block", 78: "Mute Cuica", 79: "Open Cuica", 80: "Mute Triangle",
    81: "Open Triangle",
}  # fmt: skip
FAMILIES = ("kick", "snare", "hi-hat", "tom", "cymbal", "percussion")  # in the order a legend lists them
_FAMILY_KEYS = {
    "kick": (35, 36),
    "snare": (37, 38, 40),
    "hi-hat": (42, 44, 46),
    "tom": (41, 43, 45, 47, 48, 50),
    "cymbal": (49, 51, 52, 53, 55, 57, 59),
}
GM_DRUM_FAMILY = {key: "percussion" for key in GM_DRUM_NAMES} | {
    key: family for family, keys in _FAMILY_KEYS.items() for key in keys
}


# percussion with a clear pitch: bongos, congas, timbales, agogos, cowbell, whistles, claves, wood blocks, cuicas,
# triangles. Their partials ring at pitches a decoder must hit exactly, where shaken and scraped percussion is noise
PITCHED_PERCUSSION = (56, 60, 61, 62, 63, 64, 65, 66, 67, 68, 71, 72, 75, 76, 77, 78, 79, 80, 81)
PITCHED = "pitched percussion"  # the kind :func:`drum_group` names them


def _key(value) -> int | None:
    """A key as a manifest holds it (36, '36', '36.0') -> int; None for anything else."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return int(f) if f.is_integer() else None


def drum_family(key) -> str | None:
    """The family of a GM percussion key ('36' -> 'kick'); None outside 35-81 or not a key."""
    return GM_DRUM_FAMILY.get(_key(key))


def drum_name(key) -> str | None:
    """The GM instrument of a percussion key ('42' -> 'Closed Hi-Hat'); None outside 35-81 or not a key."""
    return GM_DRUM_NAMES.get(_key(key))


def drum_group(key) -> str | None:
    """:func:`drum_family`, with percussion split into 'pitched percussion' (:data:`PITCHED_PERCUSSION`) and 'other
    percussion' (clap, tambourine, shakers, guiros, vibraslap): what a reconstruction's distance is broken down by."""
    family = drum_family(key)
    if family != "percussion":
        return family
    return PITCHED if _key(key) in PITCHED_PERCUSSION else "other percussion"
