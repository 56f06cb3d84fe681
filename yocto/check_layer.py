#!/usr/bin/env python3
"""Checks meta-roombox without BitBake: the mistakes a reader could catch, caught by a program.

Run through yocto/check-layer.sh. Each check prints `ok`, `FAIL` (with why) or `skip` (with why);
the last line is `N passed, N failed`, and the exit status is 1 when anything failed.

What it cannot do is parse the layer the way BitBake does: it reads the files with a small
parser of the BitBake syntax the layer uses, and knows oe-core's defaults (FILES, directory
variables) from a table below, as of scarthgap to walnascar.
"""

import fnmatch
import glob
import hashlib
import os
import re
import shlex
import subprocess
import sys
import textwrap
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
LAYER = os.path.join(HERE, "meta-roombox")
RECIPE_DIR = os.path.join(LAYER, "recipes-multimedia", "roombox")
RECIPE = os.path.join(RECIPE_DIR, "roombox_git.bb")
PACKAGEGROUP = os.path.join(LAYER, "recipes-multimedia", "packagegroups", "packagegroup-roombox.bb")
IMAGE = os.path.join(LAYER, "recipes-core", "images", "roombox-image.bb")
INC = os.path.join(LAYER, "conf", "include", "roombox.inc")
LAYER_CONF = os.path.join(LAYER, "conf", "layer.conf")
EXAMPLE = os.path.join(HERE, "examples", "meta-roombox-site")

sys.path.insert(0, HERE)
import importlib.util  # noqa: E402

_spec = importlib.util.spec_from_file_location("gen_crates_inc", os.path.join(HERE, "gen-crates-inc.py"))
gen_crates_inc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen_crates_inc)

PASSED = 0
FAILED = 0


def report(name, problems):
    """Prints one check's result; `problems` is a list of strings (empty: passed)."""
    global PASSED, FAILED
    if problems:
        FAILED += 1
        print(f"FAIL {name}")
        for p in problems:
            print(f"     - {p}")
    else:
        PASSED += 1
        print(f"ok   {name}")


def skip(name, why):
    """Prints a check that could not run here; it counts neither way."""
    print(f"skip {name}: {why}")


def rel(path):
    return os.path.relpath(path, REPO)


# --- A small parser of the BitBake syntax used by the layer ---------------------------------

ASSIGN = re.compile(
    r"^(?P<export>export\s+)?"
    r"(?P<var>[A-Za-z0-9_\-${}/.+~@]+?)"
    r"(?P<ovr>(?::[A-Za-z0-9_\-${}.]+)*)"
    r"(?P<flag>\[[A-Za-z0-9_\-.]+\])?"
    r"\s*(?P<op>\?\?=|\?=|:=|\+=|=\+|\.=|=\.|=)\s*(?P<value>.*)$"
)
FUNC = re.compile(r"^(?P<python>python\s+)?(?P<name>[A-Za-z0-9_\-${}:.]*)\s*\(\)\s*\{\s*$")
DIRECTIVE = re.compile(r"^(inherit|require|include|addtask|deltask|EXPORT_FUNCTIONS|unset|export)\s+\S")


class Parsed:
    """The statements of one BitBake file."""

    def __init__(self, path):
        self.path = path
        self.assigns = []  # (lineno, var, overrides list, flag, op, value)
        self.funcs = []  # (lineno, name, is_python, body)
        self.defs = []  # (lineno, source)
        self.directives = []  # (lineno, text)
        self.errors = []
        self._parse()

    def _parse(self):
        lines = open(self.path).read().split("\n")
        i = 0
        while i < len(lines):
            line = lines[i]
            start = i + 1
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                i += 1
                continue
            m = FUNC.match(line)
            if m:
                body = []
                i += 1
                while i < len(lines) and lines[i] != "}":
                    body.append(lines[i])
                    i += 1
                if i == len(lines):
                    self.errors.append(f"line {start}: function without a closing '}}' at column 0")
                self.funcs.append((start, m.group("name"), bool(m.group("python")), "\n".join(body)))
                i += 1
                continue
            if line.startswith("def "):
                src = [line]
                i += 1
                while i < len(lines) and (lines[i].startswith((" ", "\t")) or not lines[i].strip()):
                    src.append(lines[i])
                    i += 1
                self.defs.append((start, "\n".join(src).rstrip() + "\n"))
                continue
            logical = line
            while logical.endswith("\\") and i + 1 < len(lines):
                i += 1
                logical = logical[:-1] + "\n" + lines[i]
            i += 1
            if DIRECTIVE.match(logical) and not ASSIGN.match(logical):
                self.directives.append((start, logical))
                continue
            m = ASSIGN.match(logical.split("\n")[0])
            if not m:
                self.errors.append(f"line {start}: not a BitBake statement: {line.strip()[:60]}")
                continue
            # The value is everything after the operator, continuation lines included.
            value = logical.split("\n")[0][m.start("value"):]
            value = "\n".join([value] + logical.split("\n")[1:]).rstrip()
            if len(value) < 2 or value[0] not in "\"'" or value[-1] != value[0]:
                self.errors.append(f"line {start}: {m.group('var')}: value is not one quoted string")
            elif value[0] == '"' and '"' in value[1:-1] and "${@" not in value and '\\"' not in value:
                self.errors.append(f"line {start}: {m.group('var')}: a quote inside the value ends it early")
            ovr = [o for o in (m.group("ovr") or "").split(":") if o]
            self.assigns.append((start, m.group("var"), ovr, m.group("flag"), m.group("op"), value[1:-1]))

    def values(self, var, ovr=None):
        """Values assigned to `var` with exactly the override list `ovr` (default: none)."""
        ovr = ovr or []
        return [a[5] for a in self.assigns if a[1] == var and a[2] == ovr and not a[3]]

    def value(self, var, ovr=None):
        vals = self.values(var, ovr)
        return vals[-1] if vals else None

    def flags(self, var):
        return {a[3][1:-1]: a[5] for a in self.assigns if a[1] == var and a[3]}

    def functions(self, base):
        """(overrides, body) of every shell function `base` or `base:...`."""
        out = []
        for _, name, is_py, body in self.funcs:
            parts = name.split(":")
            if parts[0] == base and not is_py:
                out.append((parts[1:], body))
        return out


def inline_python(text):
    """Every ${@...} expression in `text`, braces balanced."""
    out = []
    i = text.find("${@")
    while i != -1:
        depth = 0
        j = i + 1
        quote = None
        while j < len(text):
            c = text[j]
            if quote:
                if c == quote:
                    quote = None
            elif c in "'\"":
                quote = c
            elif c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        out.append(text[i + 3 : j])
        i = text.find("${@", j)
    return out


def neutral(expr):
    """Replaces ${VAR} references with a name, so the Python around them compiles."""
    return re.sub(r"\$\{[A-Za-z0-9_\-:.]+\}", "X", expr)


# --- oe-core defaults the checks need ------------------------------------------------------


def dirs(usrmerge):
    root = "/usr" if usrmerge else ""
    d = {
        "prefix": "/usr",
        "exec_prefix": "/usr",
        "base_prefix": "",
        "root_prefix": root,
        "bindir": "/usr/bin",
        "sbindir": "/usr/sbin",
        "libdir": "/usr/lib",
        "libexecdir": "/usr/libexec",
        "nonarch_libdir": "/usr/lib",
        "datadir": "/usr/share",
        "docdir": "/usr/share/doc",
        "mandir": "/usr/share/man",
        "infodir": "/usr/share/info",
        "sysconfdir": "/etc",
        "localstatedir": "/var",
        "sharedstatedir": "/com",
        "base_bindir": root + "/bin",
        "base_sbindir": root + "/sbin",
        "base_libdir": root + "/lib",
        "nonarch_base_libdir": root + "/lib",
        "BPN": "roombox",
        "PN": "roombox",
        "SOLIBS": ".so.*",
    }
    d["systemd_unitdir"] = d["nonarch_base_libdir"] + "/systemd"
    d["systemd_system_unitdir"] = d["systemd_unitdir"] + "/system"
    return d


def expand(text, table):
    for _ in range(5):
        text = re.sub(r"\$\{([A-Za-z0-9_]+)\}", lambda m: table.get(m.group(1), m.group(0)), text)
    return text


# bitbake.conf's FILES:${PN} and FILES:${PN}-doc.
DEFAULT_FILES = (
    "${bindir}/* ${sbindir}/* ${libexecdir}/* ${libdir}/lib*${SOLIBS} ${sysconfdir} "
    "${sharedstatedir} ${localstatedir} ${base_bindir}/* ${base_sbindir}/* "
    "${base_libdir}/*${SOLIBS} ${base_prefix}/lib/udev ${prefix}/lib/udev ${base_libdir}/udev "
    "${libdir}/udev ${datadir}/${BPN} ${libdir}/${BPN}/* ${datadir}/pixmaps "
    "${datadir}/applications ${datadir}/idl ${datadir}/omf ${datadir}/sounds "
    "${libdir}/bonobo/servers"
)
DEFAULT_FILES_DOC = "${docdir} ${mandir} ${infodir} ${datadir}/gtk-doc ${datadir}/gnome/help"


def covered(path, patterns):
    for pat in patterns:
        if fnmatch.fnmatch(path, pat) or path == pat or path.startswith(pat.rstrip("/") + "/"):
            return True
    return False


# GStreamer elements roombox creates, and the package that has each. `scope` says where the
# layer must ship it: "always" (roombox or packagegroup-roombox), a MACHINE override, or
# "optional" (an alternative the agent probes for but the layer deliberately does not ship).
ELEMENTS = {
    "queue": ("gstreamer1.0", "always"),
    "identity": ("gstreamer1.0", "always"),
    "uridecodebin": ("gstreamer1.0-plugins-base-playback", "always"),
    "tee": ("gstreamer1.0", "always"),
    "capsfilter": ("gstreamer1.0", "always"),
    "filesink": ("gstreamer1.0", "always"),
    "fakesink": ("gstreamer1.0", "always"),
    "appsrc": ("gstreamer1.0-plugins-base-app", "always"),
    "appsink": ("gstreamer1.0-plugins-base-app", "always"),
    "videoconvert": ("gstreamer1.0-plugins-base-videoconvertscale", "always"),
    "videoscale": ("gstreamer1.0-plugins-base-videoconvertscale", "always"),
    "videorate": ("gstreamer1.0-plugins-base-videorate", "always"),
    "videotestsrc": ("gstreamer1.0-plugins-base-videotestsrc", "always"),
    "audioconvert": ("gstreamer1.0-plugins-base-audioconvert", "always"),
    "audioresample": ("gstreamer1.0-plugins-base-audioresample", "always"),
    "audiotestsrc": ("gstreamer1.0-plugins-base-audiotestsrc", "always"),
    "volume": ("gstreamer1.0-plugins-base-volume", "always"),
    "alsasrc": ("gstreamer1.0-plugins-base-alsa", "always"),
    "alsasink": ("gstreamer1.0-plugins-base-alsa", "always"),
    "audiomixer": ("gstreamer1.0-plugins-base-audiomixer", "always"),
    "compositor": ("gstreamer1.0-plugins-base-compositor", "always"),
    "opusdec": ("gstreamer1.0-plugins-base-opus", "always"),
    "autoaudiosink": ("gstreamer1.0-plugins-good-autodetect", "always"),
    "autovideosink": ("gstreamer1.0-plugins-good-autodetect", "always"),
    "level": ("gstreamer1.0-plugins-good-level", "always"),
    "rtph264depay": ("gstreamer1.0-plugins-good-rtp", "always"),
    "rtpopusdepay": ("gstreamer1.0-plugins-good-rtp", "always"),
    "rtpjitterbuffer": ("gstreamer1.0-plugins-good-rtpmanager", "always"),
    "kmssink": ("gstreamer1.0-plugins-bad-kms", "always"),
    "avdec_h264": ("gstreamer1.0-libav", "always"),
    "opusenc": ("gstreamer1.0-plugins-base-opus", "always"),
    "v4l2src": ("gstreamer1.0-plugins-good-video4linux2", "always"),
    "mp4mux": ("gstreamer1.0-plugins-good-isomp4", "always"),
    "matroskamux": ("gstreamer1.0-plugins-good-matroska", "always"),
    "splitmuxsink": ("gstreamer1.0-plugins-good-multifile", "always"),
    "flvmux": ("gstreamer1.0-plugins-good-flv", "always"),
    "rtmp2sink": ("gstreamer1.0-plugins-bad-rtmp2", "always"),
    "aacparse": ("gstreamer1.0-plugins-good-audioparsers", "always"),
    "h264parse": ("gstreamer1.0-plugins-bad-videoparsersbad", "always"),
    # The meeting feed's tile labels (media::meeting); plugins-base "pango".
    "textoverlay": ("gstreamer1.0-plugins-base-pango", "always"),
    # 10 ms mic buffers for the echo canceller (media::echo); built by default, no PACKAGECONFIG.
    "audiobuffersplit": ("gstreamer1.0-plugins-bad-audiobuffersplit", "always"),
    "opusparse": ("gstreamer1.0-plugins-bad-opusparse", "always"),
    "webrtcdsp": ("gstreamer1.0-plugins-bad-webrtcdsp", "always"),
    "x264enc": ("gstreamer1.0-plugins-ugly-x264", "always"),
    "avenc_aac": ("gstreamer1.0-libav", "always"),
    "v4l2h264enc": ("gstreamer1.0-plugins-good-video4linux2", "raspberrypi4"),
    "libcamerasrc": ("libcamera-gst", "rpi"),
    "nvv4l2h264enc": ("gstreamer1.0-plugins-nvvideo4linux2", "tegra"),
    "nvarguscamerasrc": ("gstreamer1.0-plugins-nvarguscamerasrc", "tegra"),
    "nvvidconv": ("gstreamer1.0-plugins-nvvidconv", "tegra"),
    "nvv4l2decoder": ("gstreamer1.0-plugins-nvvideo4linux2", "tegra"),
    "v4l2h264dec": ("gstreamer1.0-plugins-good-video4linux2", "raspberrypi4"),
    # Alternatives: roombox takes the first registered one; x264enc / avenc_aac are shipped.
    # (voaacenc needs a vo-aacenc recipe, which neither oe-core nor meta-openembedded has.)
    "openh264enc": (None, "optional"),
    "openh264dec": (None, "optional"),
    "vah264enc": (None, "optional"),
    "fdkaacenc": (None, "optional"),
    "voaacenc": (None, "optional"),
}

# Plugin packages that exist only when conf/include/roombox.inc turns a PACKAGECONFIG on.
NEEDS_PACKAGECONFIG = {
    "gstreamer1.0-plugins-base-opus": ("gstreamer1.0-plugins-base", "opus"),
    "gstreamer1.0-plugins-base-pango": ("gstreamer1.0-plugins-base", "pango"),
    "gstreamer1.0-plugins-bad-opusparse": ("gstreamer1.0-plugins-bad", "opusparse"),
    "gstreamer1.0-plugins-bad-webrtcdsp": ("gstreamer1.0-plugins-bad", "webrtcdsp"),
    "gstreamer1.0-plugins-ugly-x264": ("gstreamer1.0-plugins-ugly", "x264"),
    "libcamera-gst": ("libcamera", "gst"),
    "gstreamer1.0-plugins-bad-kms": ("gstreamer1.0-plugins-bad", "kms"),
}


# String literals that look like element names (by their ending) but are not: names given to
# element instances, pad names, caps fields, Janus protocol words.
NOT_ELEMENTS = {
    "aactee", "opustee", "rawtee", "vtee", "venc", "piptee", "sharetee",
    "rawvtee", "meetingtee", "meetrawtee", "meetaactee", "meetopustee",
    "src", "sink", "rate", "bitrate", "framerate",
    "codec", "audiocodec", "videocodec", "audio_codec", "video_codec",
}
ELEMENT_LIKE = re.compile(
    r"(src|sink|enc|dec|pay|depay|mux|demux|parse|convert|resample|mixer|buffer|dsp|scale|rate"
    r"|level|tee|queue|filter|compositor)$"
)


def elements_used():
    """Element factory names the agent's source creates or probes, with where each was seen.

    Besides make("...") calls, any string literal that ends like an element name counts
    (element lists iterated into make(), sink choices), unless NOT_ELEMENTS says otherwise.
    """
    found = {}
    for path in sorted(glob.glob(os.path.join(REPO, "src", "**", "*.rs"), recursive=True)):
        text = open(path).read()
        # Unit tests inside the file name made-up elements on purpose.
        code = text.split("#[cfg(test)]")[0]
        names = set(re.findall(r'\bmake\("([a-z0-9_]+)"\)', code))
        names |= {n for n in re.findall(r'"([a-z0-9_]+)"', code) if ELEMENT_LIKE.search(n)}
        if "AppSrc::builder" in code:
            names.add("appsrc")
        if "AppSink::builder" in code:
            names.add("appsink")
        for n in names - NOT_ELEMENTS:
            found.setdefault(n, rel(path))
    return found


def rdepends_by_scope(parsed_files):
    """{scope: set(package names)} from RDEPENDS:${PN} (scope "always") and :append:<machine>."""
    out = {}
    for p in parsed_files:
        for _, var, ovr, flag, _, value in p.assigns:
            if var != "RDEPENDS" or flag or not ovr or ovr[0] != "${PN}":
                continue
            rest = ovr[1:]
            if rest and rest[0] == "append":
                scope = rest[1] if len(rest) > 1 else "always"
            elif not rest:
                scope = "always"
            else:
                continue
            pkgs = set(re.findall(r"[a-z0-9][a-z0-9.+\-]*[a-z0-9]", value))
            out.setdefault(scope, set()).update(pkgs)
    return out


def installs(parsed, table):
    """(sources, destinations, optional sources) of the install commands in do_install*."""
    sources, dests, optional = [], [], set()
    for ovr, body in parsed.functions("do_install"):
        guard = None
        for raw in body.split("\n"):
            line = raw.strip()
            g = re.match(r'if \[ -f ("?)(\S+)\1 \]', line)
            if g:
                guard = g.group(2)
            if line == "fi":
                guard = None
            if not line.startswith("install "):
                continue
            args = shlex.split(line)[1:]
            make_dirs = False
            rest = []
            k = 0
            while k < len(args):
                a = args[k]
                if a in ("-m", "-o", "-g"):
                    k += 2
                    continue
                if a == "-d":
                    make_dirs = True
                elif a.startswith("-"):
                    pass
                else:
                    rest.append(a)
                k += 1
            if make_dirs:
                for dst in rest:
                    dests.append((expand(dst, table), True, ovr))
                continue
            *srcs, dst = rest
            for src in srcs:
                sources.append((src, ovr))
                if guard and src == guard:
                    optional.add(src)
                target = dst
                if dst.endswith("/"):
                    target = dst + os.path.basename(src.replace('"', "")).replace("$f", "<file>")
                dests.append((expand(target, table), False, ovr))
    return sources, dests, optional


# --- The checks -----------------------------------------------------------------------------


def check_syntax(files):
    for path in files:
        p = Parsed(path)
        problems = list(p.errors)
        for lineno, var, ovr, flag, op, value in p.assigns:
            base = var
            if re.search(r"_(append|prepend|remove)$", base) or re.search(r"_\$\{PN\}", base) \
                    or re.search(r"_(pn|class)-", base) or re.match(
                        r"(RDEPENDS|RRECOMMENDS|RSUGGESTS|RPROVIDES|RREPLACES|RCONFLICTS|FILES|"
                        r"CONFFILES|SYSTEMD_SERVICE|SYSTEMD_AUTO_ENABLE|ALLOW_EMPTY|INSANE_SKIP|"
                        r"USERADD_PARAM|GROUPADD_PARAM|GROUPMEMS_PARAM|PKG|SUMMARY)_", base):
                problems.append(f"line {lineno}: {var}: old override syntax; use ':' (e.g. VAR:append, VAR:${{PN}})")
        for lineno, name, _, _ in p.funcs:
            if re.search(r"_(append|prepend)(_|$)", name.split(":")[0]):
                problems.append(f"line {lineno}: {name}: old override syntax; use {name.split('_append')[0]}:append")
        report(f"{rel(path)}: parses, and uses the ':' override syntax", problems)

        problems = []
        for lineno, var, _, _, _, value in p.assigns:
            for expr in inline_python(value):
                try:
                    compile(neutral(expr), f"{var}", "eval")
                except SyntaxError as e:
                    problems.append(f"line {lineno}: {var}: ${{@...}} does not compile: {e.msg}")
        for lineno, name, is_py, body in p.funcs:
            if is_py:
                try:
                    compile(textwrap.dedent(neutral(body)), name or "anonymous", "exec")
                except SyntaxError as e:
                    problems.append(f"line {lineno}: python {name or '()'}: {e.msg} (line {e.lineno})")
            else:
                r = subprocess.run(["bash", "-n"], input=f"f() {{\n{body}\n}}\n", text=True,
                                   capture_output=True)
                if r.returncode:
                    problems.append(f"line {lineno}: {name}: bash -n: {r.stderr.strip()}")
        for lineno, src in p.defs:
            try:
                compile(src, "def", "exec")
            except SyntaxError as e:
                problems.append(f"line {lineno}: def: {e.msg}")
        for lineno, text in p.directives:
            if text.startswith(("require ", "include ")):
                target = text.split(None, 1)[1].strip().replace("${BPN}", "roombox")
                if "${" not in target and not target.startswith("recipes-core/") \
                        and not os.path.exists(os.path.join(os.path.dirname(path), target)):
                    problems.append(f"line {lineno}: {target} does not exist beside {os.path.basename(path)}")
        report(f"{rel(path)}: inline Python compiles, shell functions pass bash -n, requires exist", problems)


def check_layer_conf():
    p = Parsed(LAYER_CONF)
    problems = []
    if "roombox" not in (p.value("BBFILE_COLLECTIONS") or "").split():
        problems.append('BBFILE_COLLECTIONS += "roombox" is missing')
    compat = (p.value("LAYERSERIES_COMPAT_roombox") or "").split()
    for series in ("scarthgap", "styhead", "walnascar"):
        if series not in compat:
            problems.append(f"LAYERSERIES_COMPAT_roombox lacks {series}")
    if "core" not in (p.value("LAYERDEPENDS_roombox") or "").split():
        problems.append("LAYERDEPENDS_roombox lacks core")
    if p.value("BBFILE_PATTERN_roombox") != "^${LAYERDIR}/":
        problems.append('BBFILE_PATTERN_roombox should be "^${LAYERDIR}/"')
    globs = []
    for v in p.values("BBFILES"):
        globs += [g.replace("${LAYERDIR}", LAYER) for g in v.replace("\\", " ").split()]
    for path in glob.glob(os.path.join(LAYER, "**", "*.bb*"), recursive=True):
        if not any(fnmatch.fnmatch(path, g) for g in globs):
            problems.append(f"{rel(path)} is not matched by BBFILES, so BitBake would never see it")
    report("layer.conf: collection, series, dependencies, BBFILES reach every recipe", problems)


def check_recipe_files(p):
    src_uri = " ".join(p.values("SRC_URI"))
    local = [u.split(";")[0][len("file://"):] for u in src_uri.split() if u.startswith("file://")]
    search = [os.path.join(RECIPE_DIR, d) for d in ("roombox-git", "roombox", "files")]
    problems = [f"SRC_URI file://{f} is in none of {', '.join(rel(s) for s in search)}"
                for f in local if not any(os.path.exists(os.path.join(s, f)) for s in search)]
    for s in search:
        for f in sorted(os.listdir(s)) if os.path.isdir(s) else []:
            if f not in local:
                problems.append(f"{rel(os.path.join(s, f))} is not in SRC_URI (dead file)")
    report("roombox: every file:// in SRC_URI exists under files/, and every file there is used", problems)
    return local


def check_installs(p, local):
    problems = []
    table = dirs(True)
    sources, _, optional = installs(p, table)
    used_local = set()
    for src, _ in sources:
        s = src.replace('"', "")
        if s.startswith("${UNPACKDIR}/") or s.startswith("${WORKDIR}/"):
            name = s.split("/", 1)[1]
            used_local.add(name)
            if name not in local:
                problems.append(f"do_install uses {s}, which SRC_URI does not fetch")
        elif s.startswith("${S}/"):
            target = s[len("${S}/"):]
            if s in optional or src in optional:
                continue
            if not glob.glob(os.path.join(REPO, target)):
                problems.append(f"do_install copies {s}, but {target} is not in the repository")
        elif s == "$f":
            loops = re.findall(r"for f in \$\{S\}/(\S+); do", "\n".join(b for _, b in p.functions("do_install")))
            for pattern in loops:
                if not glob.glob(os.path.join(REPO, pattern)):
                    problems.append(f"do_install loops over ${{S}}/{pattern}, which matches nothing")
        else:
            problems.append(f"do_install installs {s}: neither from ${{S}} nor from SRC_URI")
    for name in local:
        if name not in used_local:
            problems.append(f"SRC_URI fetches {name}, which no do_install* installs")
    report("roombox: do_install copies only files that exist (repository or SRC_URI)", problems)

    for usrmerge in (True, False):
        table = dirs(usrmerge)
        patterns = [expand(x, table) for x in DEFAULT_FILES.split()]
        patterns += [expand(x, table) for x in DEFAULT_FILES_DOC.split()]
        for v in p.values("FILES", ["${PN}", "append"]) + p.values("FILES", ["${PN}"]):
            patterns += [expand(x, table) for x in v.replace("\\", " ").split()]
        for unit in (p.value("SYSTEMD_SERVICE", ["${PN}"]) or "").split():
            patterns.append(table["systemd_system_unitdir"] + "/" + unit)
        _, dests, _ = installs(p, table)
        dests.append((table["bindir"] + "/roombox", False, []))  # cargo_do_install
        problems = []
        for dst, is_dir, ovr in dests:
            path = dst.replace("${D}", "")
            if "${" in path:
                problems.append(f"cannot expand {dst}")
            elif not covered(path, patterns):
                where = f" (do_install:{':'.join(ovr)})" if ovr else ""
                problems.append(f"{path}{where} is in no package's FILES: it would stop the build "
                                "as installed-vs-shipped")
        mode = "usrmerge" if usrmerge else "without usrmerge"
        report(f"roombox: every installed path is in FILES ({mode})", problems)


def check_systemd(p):
    problems = []
    table = dirs(True)
    sources, dests, _ = installs(p, table)
    srcs = {s.replace('"', "") for s, _ in sources}
    for name in ("roombox.service", "roombox.sysusers"):
        if f"${{S}}/systemd/{name}" not in srcs:
            problems.append(f"do_install does not take {name} from ${{S}}/systemd/")
    for path in glob.glob(os.path.join(HERE, "**", "roombox.service"), recursive=True) + \
            glob.glob(os.path.join(HERE, "**", "roombox.sysusers"), recursive=True):
        original = os.path.join(REPO, "systemd", os.path.basename(path))
        if open(path, "rb").read() != open(original, "rb").read():
            problems.append(f"{rel(path)} is a copy that differs from {rel(original)}")
    installed = {d for d, _, _ in dests}
    for unit in (p.value("SYSTEMD_SERVICE", ["${PN}"]) or "").split():
        if not os.path.exists(os.path.join(REPO, "systemd", unit)):
            problems.append(f"SYSTEMD_SERVICE names {unit}, which is not in systemd/")
        if "${D}" + table["systemd_system_unitdir"] + "/" + unit not in installed:
            problems.append(f"SYSTEMD_SERVICE names {unit}, which do_install does not install")
    if p.value("SYSTEMD_AUTO_ENABLE", ["${PN}"]) != "enable":
        problems.append('SYSTEMD_AUTO_ENABLE:${PN} should be "enable"')
    for conf in (p.value("CONFFILES", ["${PN}"]) or "").split():
        if "${D}" + expand(conf, table) not in installed:
            problems.append(f"CONFFILES lists {conf}, which is not installed")
    report("roombox: unit and sysusers.d come from the repository's systemd/, SYSTEMD_*/CONFFILES match", problems)

    unit = open(os.path.join(REPO, "systemd", "roombox.service")).read()
    keys = {}
    for line in unit.split("\n"):
        m = re.match(r"^([A-Za-z]+)=(.*)$", line)
        if m:
            keys.setdefault(m.group(1), []).append(m.group(2))
    problems = []
    exec_start = (keys.get("ExecStart") or [""])[0].split()
    if not exec_start or exec_start[0] != table["bindir"] + "/roombox":
        problems.append(f"ExecStart runs {exec_start[:1]}, but cargo installs ${{bindir}}/roombox")
    if "--config" in exec_start:
        cfg = exec_start[exec_start.index("--config") + 1]
        if "${D}" + cfg not in installed:
            problems.append(f"ExecStart reads {cfg}, which the recipe does not install")
    useradd = " ".join(p.values("USERADD_PARAM", ["${PN}"]))
    groupadd = " ".join(p.values("GROUPADD_PARAM", ["${PN}"]))
    user = (keys.get("User") or ["root"])[0]
    if not re.search(rf"(^|\s){re.escape(user)}\s*(;|$)", useradd.strip()):
        problems.append(f"User={user} is not the user USERADD_PARAM makes")
    m = re.search(r"--groups\s+(\S+)", useradd)
    groups = set(m.group(1).split(",")) if m else set()
    created = set(re.findall(r"--system\s+([a-z_][a-z0-9_\-]*)", groupadd))
    base_passwd = {"video", "audio", "dialout", "input", "disk", "tty", "users"}
    for g in " ".join(keys.get("SupplementaryGroups", [])).split():
        if g not in groups:
            problems.append(f"SupplementaryGroups={g}, but USERADD_PARAM does not put {user} in it")
        if g not in created and g not in base_passwd:
            problems.append(f"group {g} is neither made by GROUPADD_PARAM nor in base-passwd")
    sysusers = open(os.path.join(REPO, "systemd", "roombox.sysusers")).read()
    for g in re.findall(r"^m\s+\S+\s+(\S+)", sysusers, re.M):
        if g not in groups:
            problems.append(f"roombox.sysusers adds {user} to {g}, USERADD_PARAM does not")
    report("roombox: user, groups and paths agree with roombox.service and roombox.sysusers", problems)


def check_license(p):
    problems = []
    chk = p.value("LIC_FILES_CHKSUM") or ""
    m = re.match(r"file://([^;]+)(.*)$", chk.strip())
    cargo = tomllib.load(open(os.path.join(REPO, "Cargo.toml"), "rb"))
    if p.value("LICENSE") != cargo["package"].get("license"):
        problems.append(f"LICENSE {p.value('LICENSE')!r} is not Cargo.toml's {cargo['package'].get('license')!r}")
    if not m:
        problems.append("LIC_FILES_CHKSUM is not a file:// entry")
    else:
        params = dict(kv.split("=", 1) for kv in m.group(2).split(";") if "=" in kv)
        lines = open(os.path.join(REPO, m.group(1)), "rb").readlines()
        begin = int(params.get("beginline", 1))
        end = int(params.get("endline", len(lines)))
        md5 = hashlib.md5(b"".join(lines[begin - 1 : end])).hexdigest()
        if md5 != params.get("md5"):
            problems.append(f"md5 of {m.group(1)} lines {begin}-{end} is {md5}, the recipe says "
                            f"{params.get('md5')} (the file changed: check the line, then update)")
    report("roombox: LICENSE and LIC_FILES_CHKSUM match the repository", problems)


def check_crates(p):
    problems = []
    if not any(t.strip() == "require ${BPN}-crates.inc" for _, t in p.directives):
        problems.append("the recipe does not `require ${BPN}-crates.inc`")
    inc = os.path.join(RECIPE_DIR, "roombox-crates.inc")
    want = gen_crates_inc.render(REPO)
    have = open(inc).read() if os.path.exists(inc) else ""
    if have != want:
        problems.append("roombox-crates.inc does not match Cargo.lock: run `python3 yocto/gen-crates-inc.py` "
                        "(or `bitbake -c update_crates roombox`) and commit the result")
    report("roombox: roombox-crates.inc lists exactly the crates of Cargo.lock", problems)


def check_features(p):
    problems = []
    cargo = tomllib.load(open(os.path.join(REPO, "Cargo.toml"), "rb"))
    features = set(cargo.get("features", {}))
    text = " ".join(a[5] for a in p.assigns)
    for f in re.findall(r"--features[ =]([A-Za-z0-9_\-,]+)", text):
        for name in f.split(","):
            if name not in features:
                problems.append(f"--features {name}: Cargo.toml has no such feature ({sorted(features)})")
    defined = set(p.flags("PACKAGECONFIG"))
    for a in p.assigns:
        if a[1] in ("PACKAGECONFIG", "ROOMBOX_MACHINE_PACKAGECONFIG") and not a[3]:
            for item in re.sub(r"\$\{[^}]*\}", " ", a[5]).split():
                if item not in defined:
                    problems.append(f"PACKAGECONFIG item {item} has no PACKAGECONFIG[{item}]")
    report("roombox: cargo features and PACKAGECONFIG items exist", problems)


def check_min_rust(p):
    name = "roombox: ROOMBOX_MIN_RUST is the highest rust-version among the locked crates"
    regs = glob.glob(os.path.join(os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo")),
                                  "registry", "src", "*"))
    lock = tomllib.load(open(os.path.join(REPO, "Cargo.lock"), "rb"))
    best, who, missing = (0,), None, 0
    for pkg in lock["package"]:
        if "crates.io" not in pkg.get("source", ""):
            continue
        manifest = None
        for r in regs:
            cand = os.path.join(r, f"{pkg['name']}-{pkg['version']}", "Cargo.toml")
            if os.path.exists(cand):
                manifest = cand
                break
        if not manifest:
            missing += 1
            continue
        rv = tomllib.load(open(manifest, "rb")).get("package", {}).get("rust-version")
        if isinstance(rv, str):
            v = tuple(int(x) for x in rv.split("."))
            if v > best:
                best, who = v, f"{pkg['name']} {pkg['version']}"
    if missing:
        skip(name, f"{missing} locked crates are not in the local cargo registry")
        return
    have = p.value("ROOMBOX_MIN_RUST")
    want = ".".join(str(x) for x in best[:2])
    report(name, [] if have == want else
           [f"ROOMBOX_MIN_RUST is {have}, the locked crates need {'.'.join(map(str, best))} ({who})"])


def check_elements(p, pg, inc):
    problems = []
    scopes = rdepends_by_scope([p, pg])
    always = scopes.get("always", set())
    for element, where in sorted(elements_used().items()):
        if element not in ELEMENTS:
            problems.append(f"{where} uses element {element}, which check_layer.py does not know: "
                            "add it to ELEMENTS with its package (and the package to the recipes), "
                            "or to NOT_ELEMENTS if it is not an element")
            continue
        pkg, scope = ELEMENTS[element]
        if scope == "optional":
            continue
        have = always if scope == "always" else always | scopes.get(scope, set())
        if pkg not in have:
            problems.append(f"{element} ({where}) needs {pkg} in RDEPENDS"
                            + ("" if scope == "always" else f" (at least with :append:{scope})"))
    report("runtime: every GStreamer element the agent creates has its package in RDEPENDS", problems)

    problems = []
    shipped = set().union(*scopes.values()) if scopes else set()
    for pkg, (recipe, option) in NEEDS_PACKAGECONFIG.items():
        if pkg not in shipped:
            continue
        ok = any(ovr == ["append", f"pn-{recipe}"] and option in re.findall(r"[a-z0-9]+", value)
                 for _, var, ovr, _, _, value in inc.assigns if var == "PACKAGECONFIG")
        if not ok:
            problems.append(f"{pkg} is in RDEPENDS, but conf/include/roombox.inc does not add "
                            f"'{option}' to PACKAGECONFIG:pn-{recipe}")
    if inc.value("ROOMBOX_INC_USED") != "1":
        problems.append('conf/include/roombox.inc must set ROOMBOX_INC_USED = "1" (the recipe checks it)')
    if "ROOMBOX_INC_USED" not in "\n".join(b for _, _, py, b in p.funcs if py):
        problems.append("the roombox recipe no longer checks ROOMBOX_INC_USED")
    report("runtime: plugins that need a PACKAGECONFIG get it from conf/include/roombox.inc", problems)


def check_packagegroup(pg):
    problems = []
    lines = open(PACKAGEGROUP).read().split("\n")
    inherit_at = next((i for i, l in enumerate(lines) if l.startswith("inherit") and "packagegroup" in l), None)
    arch_at = next((i for i, l in enumerate(lines) if l.startswith("PACKAGE_ARCH")), None)
    machine_specific = any(len(a[2]) > 2 and a[2][1] == "append" for a in pg.assigns if a[1] == "RDEPENDS")
    if inherit_at is None:
        problems.append("does not inherit packagegroup")
    if machine_specific and (arch_at is None or inherit_at is None or arch_at > inherit_at):
        problems.append('machine overrides in RDEPENDS need PACKAGE_ARCH = "${MACHINE_ARCH}" before inherit packagegroup')
    if "roombox" not in rdepends_by_scope([pg]).get("always", set()):
        problems.append("RDEPENDS:${PN} does not pull in roombox")
    report("packagegroup-roombox: machine-specific, pulls in roombox", problems)


def check_image(img):
    problems = []
    text = " ".join(v for _, var, ovr, _, _, v in img.assigns if var == "IMAGE_INSTALL")
    for pkg in ("packagegroup-roombox", "roombox", "alsa-utils", "v4l-utils", "libgpiod-tools"):
        if pkg not in text.split() and pkg not in re.findall(r"[a-z0-9][a-z0-9.+\-]*", text):
            problems.append(f"IMAGE_INSTALL lacks {pkg}")
    for _, var, _, _, _, _ in img.assigns:
        if var in ("DISTRO_FEATURES", "VIRTUAL-RUNTIME_init_manager", "INIT_MANAGER"):
            problems.append(f"{var} is a distro setting: document it for local.conf instead of setting it here")
    if not any("core-image-minimal.bb" in t for _, t in img.directives):
        problems.append("does not build on core-image-minimal")
    report("roombox-image: core-image-minimal plus roombox and tools, init left to the distro", problems)


def check_example():
    name = "examples/meta-roombox-site: drop-ins use only keys documented in config/roombox.toml"
    reference = tomllib.load(open(os.path.join(REPO, "config", "roombox.toml"), "rb"))

    def walk(doc, ref, prefix, problems, path):
        for k, v in doc.items():
            key = f"{prefix}{k}"
            if k not in ref:
                problems.append(f"{rel(path)}: [{prefix.rstrip('.')}] has no key {k} in config/roombox.toml")
            elif isinstance(v, dict):
                if not isinstance(ref[k], dict):
                    problems.append(f"{rel(path)}: {key} is a table, config/roombox.toml has a value")
                else:
                    walk(v, ref[k], key + ".", problems, path)
            elif type(v) is not type(ref[k]):
                problems.append(f"{rel(path)}: {key} is {type(v).__name__}, config/roombox.toml has {type(ref[k]).__name__}")

    tomls = glob.glob(os.path.join(EXAMPLE, "**", "*.toml"), recursive=True)
    if not tomls:
        skip(name, "no example drop-ins")
        return
    problems = []
    for path in tomls:
        try:
            walk(tomllib.load(open(path, "rb")), reference, "", problems, path)
        except tomllib.TOMLDecodeError as e:
            problems.append(f"{rel(path)}: {e}")
    bbappend = glob.glob(os.path.join(EXAMPLE, "**", "*.bbappend"), recursive=True)
    for path in bbappend:
        ex = Parsed(path)
        local = [u.split(";")[0][len("file://"):] for v in ex.values("SRC_URI", ["append"])
                 for u in v.split() if u.startswith("file://")]
        for f in local:
            if not os.path.exists(os.path.join(os.path.dirname(path), "files", f)):
                problems.append(f"{rel(path)}: SRC_URI file://{f} is not under files/")
    report(name, problems)


def main():
    files = sorted(glob.glob(os.path.join(LAYER, "**", "*.bb"), recursive=True)
                   + glob.glob(os.path.join(LAYER, "**", "*.bbappend"), recursive=True)
                   + glob.glob(os.path.join(LAYER, "**", "*.inc"), recursive=True)
                   + glob.glob(os.path.join(LAYER, "**", "*.conf"), recursive=True)
                   + glob.glob(os.path.join(EXAMPLE, "**", "*.bbappend"), recursive=True)
                   + glob.glob(os.path.join(EXAMPLE, "conf", "*.conf"), recursive=True))
    files = [f for f in files if not f.endswith("-crates.inc") and "/files/" not in f]
    check_syntax(files)
    check_layer_conf()
    p = Parsed(RECIPE)
    local = check_recipe_files(p)
    check_installs(p, local)
    check_systemd(p)
    check_license(p)
    check_crates(p)
    check_features(p)
    check_min_rust(p)
    pg = Parsed(PACKAGEGROUP)
    check_elements(p, pg, Parsed(INC))
    check_packagegroup(pg)
    check_image(Parsed(IMAGE))
    check_example()
    print(f"{PASSED} passed, {FAILED} failed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
