#!/usr/bin/env python3
"""Man pages and shell completions for skopos, skopos-tracker and tracker-cli.

Made from what the built programs print -- every command's --help and the example config
files -- which the programs generate from their option tables, so a page or a completion
cannot disagree with --help. The build runs this after linking the programs (see
cmake/Docs.cmake); it is not run by hand.

Usage: gen-docs.py BIN_DIR OUT_DIR VERSION
Writes OUT_DIR/man/{skopos.8,skopos-tracker.8,tracker-cli.1,skopos.conf.5} (and each
gzipped as Debian installs them: -9, no name or time, so the bytes repeat),
OUT_DIR/bash-completion/{skopos,skopos-tracker,tracker-cli} and
OUT_DIR/zsh/{_skopos,_skopos-tracker,_tracker-cli}.
"""
import gzip
import os
import re
import subprocess
import sys

OPTION = re.compile(r'^  (--[a-z0-9][a-z0-9-]*)(?:[ =]([^ ]+))?(?: {2,}(.*))?$')
COMMAND = re.compile(r'^  ([a-z][a-z0-9-]*)(?: ([^ ].*?))?(?: {2,}(.*))?$')
CONTINUATION = re.compile(r'^ {8,}(\S.*)$')


class Failure(Exception):
    pass


def run(bin_dir, argv):
    path = os.path.join(bin_dir, argv[0])
    done = subprocess.run([path] + argv[1:], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise Failure(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def options_of(text):
    """The options a --help lists, in order: (name, value placeholder or None, the first
    line of its help)."""
    found = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = OPTION.match(line)
        if m and m.group(1) not in [o[0] for o in found]:
            first = m.group(3)
            if not first and i + 1 < len(lines) and CONTINUATION.match(lines[i + 1]):
                first = CONTINUATION.match(lines[i + 1]).group(1)
            found.append((m.group(1), m.group(2), first or ''))
    return found


def commands_of(text, words):
    """The subcommands a --help names after `words` (["skopos", "lock"]): the entries of
    its "commands" section and the words after them in its usage lines."""
    found = []
    in_commands = False
    prefix = ' '.join(words) + ' '
    for line in text.splitlines():
        if re.match(r'^commands\b', line):
            in_commands = True
            continue
        if in_commands and line.strip() == '':
            in_commands = False
        if in_commands:
            m = COMMAND.match(line)
            if m:
                found.append(m.group(1))
            continue
        usage = line[len('usage: '):] if line.startswith('usage: ') else line.strip()
        if usage.startswith(prefix) and (line.startswith('usage: ') or line.startswith('       ')):
            word = usage[len(prefix):].split(' ')[0]
            if re.match(r'^[a-z][a-z|-]*$', word):
                found.extend(word.split('|'))
    return list(dict.fromkeys(found))


def tree(bin_dir, words, depth=0):
    """{"help", "options", "commands": {name: tree}} for a program or command."""
    text = run(bin_dir, words + ['--help'])
    node = {'help': text, 'options': options_of(text), 'commands': {}}
    if depth >= 2:
        return node
    for name in commands_of(text, words):
        child = run(bin_dir, words + [name, '--help'])
        if child == text:
            # A subcommand of a group that documents them together (skopos lock status).
            node['commands'][name] = {'help': None, 'options': node['options'], 'commands': {}}
        else:
            node['commands'][name] = tree(bin_dir, words + [name], depth + 1)
    return node


# --- man pages ---------------------------------------------------------------------

def roff_text(text):
    text = text.replace('\\', '\\e').replace('-', '\\-')
    return '\\&' + text if text.startswith(('.', "'")) else text


def roff_help(text):
    """A --help as man page markup: options and commands as tagged paragraphs, prose as
    paragraphs, indented blocks (usage lines, examples) as they are."""
    out = []
    lines = text.rstrip('\n').split('\n')
    i = 0
    verbatim = False

    def set_verbatim(on):
        nonlocal verbatim
        if on != verbatim:
            out.append('.nf' if on else '.fi')
            verbatim = on

    while i < len(lines):
        line = lines[i]
        option = OPTION.match(line)
        command = COMMAND.match(line) if not option else None
        if option or (command and not line.startswith('   ')):
            head_match = option or command
            set_verbatim(False)
            # The entry's description: on its line past the column, then the deeper
            # indented lines below it.
            desc = [head_match.group(3)] if head_match.group(3) else []
            j = i + 1
            while j < len(lines) and CONTINUATION.match(lines[j]) and not OPTION.match(lines[j]):
                desc.append(CONTINUATION.match(lines[j]).group(1))
                j += 1
            if option:
                head = '\\fB' + roff_text(option.group(1)) + '\\fR'
                if option.group(2):
                    head += ' \\fI' + roff_text(option.group(2)) + '\\fR'
            else:
                head = '\\fB' + roff_text(command.group(1)) + '\\fR'
                if command.group(2):
                    head += ' ' + roff_text(command.group(2))
            if not desc and not option and not command.group(2):
                # A line of indented text that only looks like an entry.
                set_verbatim(True)
                out.append(roff_text(line))
                i += 1
                continue
            out.append('.TP')
            out.append(head)
            out.append(roff_text(' '.join(desc)) if desc else '')
            i = j
            continue
        if line.strip() == '':
            set_verbatim(False)
            out.append('.PP')
        elif line.startswith(' ') or line.startswith('usage: '):
            set_verbatim(True)
            out.append(roff_text(line))
        elif re.match(r'^[a-z][a-z ()\',=.-]*:$', line) or re.match(r'^[a-z].*\):$', line):
            set_verbatim(False)
            out.append('.PP')
            out.append('\\fB' + roff_text(line) + '\\fR')
        else:
            set_verbatim(False)
            out.append(roff_text(line))
        i += 1
    set_verbatim(False)
    return '\n'.join(out) + '\n'


def page(name, section, version, summary, sections):
    out = [f'.\\" Generated by tools/gen-docs.py from the program\'s --help; do not edit.',
           f'.TH "{name.upper()}" "{section}" "" "skopos {version}" "Skopos"',
           '.SH NAME', f'{roff_text(name)} \\- {roff_text(summary)}']
    for title, body in sections:
        out.append(f'.SH "{title}"')
        out.append(body.rstrip('\n'))
    return '\n'.join(out) + '\n'


def see_also(*pages):
    return ',\n'.join(f'.BR {p[0]} ({p[1]})' for p in pages) + '\n'


FILES_SKOPOS = """.TP
.I /etc/skopos/skopos.conf
settings of every command ('name = value', the long options without dashes; see skopos.conf(5))
.TP
.I /var/lib/skopos
the drain journal and the agent's state (skopos-agent.service's StateDirectory)
.TP
.I /usr/lib/systemd/system/skopos-agent.service
the agent's unit (the package's path; /usr/local/lib/... after cmake \\-\\-install)
.TP
.I /usr/lib/systemd/system/skopos-lock-metrics.timer
writes the cluster's lock status for node_exporter every minute (skopos lock status
\\-\\-metrics\\-file)
"""
FILES_TRACKER = """.TP
.I /etc/skopos/tracker.conf
the tracker's settings (see skopos.conf(5))
.TP
.I /run/skopos/tracker.sock
the stream of connection counts subscribers read (tracker-cli, skopos)
.TP
.I /sys/fs/bpf/skopos\\-tracker
the BPF maps and program kept pinned between runs (removed with \\-\\-bpf\\-unpin)
.TP
.I /usr/lib/systemd/system/skopos-tracker.service
the tracker's unit (the package's path; /usr/local/lib/... after cmake \\-\\-install)
"""


def program_page(name, section, version, summary, root, files, also):
    # The usage lines, then the rest of the program's --help.
    head, _, rest = root['help'].partition('\n\n')
    sections = [('SYNOPSIS', roff_help(head + '\n')), ('DESCRIPTION', roff_help(rest))]
    for command, node in root['commands'].items():
        if node['help'] is None:
            continue
        sections.append((f'{name} {command}'.upper(), roff_help(node['help'])))
        for sub, child in node['commands'].items():
            if child['help'] is not None:
                sections.append((f'{name} {command} {sub}'.upper(), roff_help(child['help'])))
    if files:
        sections.append(('FILES', files))
    sections.append(('SEE ALSO', see_also(*also)))
    return page(name, section, version, summary, sections)


def parse_example(text):
    """(title lines, [(name, value, help, default)]) from an --example-config."""
    title = []
    settings = []
    lines = text.split('\n')
    i = 0
    while i < len(lines) and lines[i].startswith('# '):
        title.append(lines[i][2:])
        i += 1
    while i < len(lines):
        m = re.match(r'^# --([a-z0-9-]+)(?: (\S+))?: (.*)$', lines[i])
        if not m:
            i += 1
            continue
        help_lines = [m.group(3)]
        i += 1
        while i < len(lines) and lines[i].startswith('#   '):
            help_lines.append(lines[i][4:])
            i += 1
        default = ''
        if i < len(lines) and lines[i].startswith('#' + m.group(1) + ' = '):
            default = lines[i][len(m.group(1)) + 4:]
            i += 1
        settings.append((m.group(1), m.group(2), ' '.join(help_lines), default))
    expected = sum(1 for line in lines if re.match(r'^#[a-z0-9-]+ = ', line))
    if len(settings) != expected:
        raise Failure(f'--example-config: read {len(settings)} settings of {expected}')
    return title, settings


def settings_roff(settings):
    out = []
    for name, value, help_text, default in settings:
        out.append('.TP')
        out.append(f'\\fB{roff_text(name)}\\fR = \\fI{roff_text(value or "true|false")}\\fR')
        # A placeholder where a default would be: the option shows no default.
        shown = f' (default {default})' if default not in ('', '""', 'false', value) else ''
        if value is None:
            shown = ' (default false)'
        out.append(roff_text(help_text + shown))
    return '\n'.join(out) + '\n'


def conf_page(version, agent_example, tracker_example):
    _, agent = parse_example(agent_example)
    _, tracker = parse_example(tracker_example)
    description = """The settings files of
.BR skopos (8)
and
.BR skopos\\-tracker (8).
Each line is
.I name = value
where
.I name
is one of the program's long options without its dashes; lines that start with
.B #
and blank lines are ignored; a value may be quoted ("...").
A flag takes
.B true
or
.BR false .
An option given on the command line wins over the file; an unknown name or a malformed
value is an error that names the file and the line, and the program does not start.
.PP
.I /etc/skopos/skopos.conf
is read by every
.B skopos
command when it exists (\\-\\-config FILE names another) and by
.BR skopos\\-agent.service .
.I /etc/skopos/tracker.conf
is read by
.B skopos\\-tracker
when the unit passes it with \\-\\-config.
The installed files list every setting, commented out at its default; the programs print
them with
.B skopos agent \\-\\-example\\-config
and
.BR "skopos\\-tracker \\-\\-example\\-config" .
"""
    sections = [('DESCRIPTION', description),
                ('SKOPOS.CONF (SKOPOS AGENT AND EVERY SKOPOS COMMAND)', settings_roff(agent)),
                ('TRACKER.CONF (SKOPOS-TRACKER)', settings_roff(tracker)),
                ('SEE ALSO', see_also(('skopos', 8), ('skopos-tracker', 8)))]
    return page('skopos.conf', 5, version, 'settings of skopos and skopos-tracker', sections)


# --- completions -------------------------------------------------------------------

def value_words(placeholder):
    """The values to offer for an option's placeholder: its choices ("auto|on|off"), or
    none (a file, a duration: left to the shell's defaults)."""
    if placeholder and '|' in placeholder and re.match(r'^[a-z0-9|-]+$', placeholder):
        return placeholder.split('|')
    return []


def flatten(node, path=()):
    """Every (path of command words, node) in the tree."""
    yield path, node
    for name, child in node['commands'].items():
        yield from flatten(child, path + (name,))


def command_paths(root):
    """Every command path below the program ("lock", "lock status", ...), '|'-joined:
    what the completions match the typed words against."""
    return '|'.join(sorted({' '.join(p) for p, _ in flatten(root) if p}))


def bash_completion(program, root):
    func = '_' + program.replace('-', '_')
    cases = []
    for path, node in flatten(root):
        key = ' '.join(path)
        words = ' '.join(list(node['commands']) + [o[0] for o in node['options']])
        values = []
        for option, placeholder, _ in node['options']:
            choices = value_words(placeholder)
            if choices:
                values.append(f'        {option}) COMPREPLY=($(compgen -W "{" ".join(choices)}" -- "$cur")); return ;;')
            elif placeholder:
                values.append(f'        {option}) COMPREPLY=($(compgen -f -- "$cur")); return ;;')
        body = '\n'.join(values)
        cases.append(f'    "{key}")\n      case "$prev" in\n{body}\n      esac\n'
                     f'      COMPREPLY=($(compgen -W "{words}" -- "$cur")) ;;')
    known = command_paths(root)
    return f"""# bash completion for {program}: generated by tools/gen-docs.py from its --help; do not edit.
{func}() {{
  local cur prev
  cur=${{COMP_WORDS[COMP_CWORD]}}
  prev=${{COMP_WORDS[COMP_CWORD-1]}}
  # The command words typed so far (skipping options and their values) pick the node.
  local cmdpath="" word i
  for ((i = 1; i < COMP_CWORD; i++)); do
    word=${{COMP_WORDS[i]}}
    case "$word" in -*) continue ;; esac
    case "|{known}|" in
      *"|${{cmdpath:+$cmdpath }}$word|"*) cmdpath=${{cmdpath:+$cmdpath }}$word ;;
    esac
  done
  case "$cmdpath" in
{chr(10).join(cases)}
  esac
}}
complete -F {func} {program}
"""


def zsh_quote(text):
    return text.replace("'", "'\\''").replace('[', '\\[').replace(']', '\\]').replace(':', '\\:')


def zsh_completion(program, root):
    func = '_' + program.replace('-', '_')
    cases = []
    for path, node in flatten(root):
        key = ' '.join(path)
        specs = []
        for option, placeholder, first in node['options']:
            what = zsh_quote(first or option[2:])
            choices = value_words(placeholder)
            if choices:
                specs.append(f"'{option}=[{what}]:{zsh_quote(placeholder)}:({' '.join(choices)})'")
            elif placeholder:
                specs.append(f"'{option}=[{what}]:{zsh_quote(placeholder)}:_files'")
            else:
                specs.append(f"'{option}[{what}]'")
        if node['commands']:
            specs.append("'1:command:(" + ' '.join(node['commands']) + ")'")
        specs.append("'*:argument:_files'")
        cases.append(f'    "{key}") _arguments -s \\\n      ' + ' \\\n      '.join(specs) + ' ;;')
    known = command_paths(root)
    return f"""#compdef {program}
# zsh completion for {program}: generated by tools/gen-docs.py from its --help; do not edit.
{func}() {{
  # The command words typed so far (skipping options and their values) pick the node;
  # they leave `words`, so that its first argument is the node's.
  local cmdpath="" word i
  local -a rest
  rest=("${{words[1]}}")
  local removed=0
  for ((i = 2; i <= ${{#words}}; i++)); do
    word=${{words[i]}}
    if (( i < CURRENT )) && [[ $word != -* && "|{known}|" == *"|${{cmdpath:+$cmdpath }}$word|"* ]]; then
      cmdpath=${{cmdpath:+$cmdpath }}$word
      (( removed++ ))
      continue
    fi
    rest+=("$word")
  done
  words=("${{rest[@]}}")
  (( CURRENT -= removed ))
  case "$cmdpath" in
{chr(10).join(cases)}
  esac
}}
{func} "$@"
"""


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    bin_dir, out_dir, version = sys.argv[1:]
    programs = {
        'skopos': tree(bin_dir, ['skopos']),
        'skopos-tracker': tree(bin_dir, ['skopos-tracker']),
        'tracker-cli': tree(bin_dir, ['tracker-cli']),
    }
    for sub in ('man', 'bash-completion', 'zsh'):
        os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
    pages = {
        'skopos.8': program_page('skopos', 8, version, 'drain container hosts without dropping a request',
                                 programs['skopos'], FILES_SKOPOS,
                                 [('skopos-tracker', 8), ('tracker-cli', 1), ('skopos.conf', 5)]),
        'skopos-tracker.8': program_page('skopos-tracker', 8, version,
                                         'established connections per container, streamed to subscribers',
                                         programs['skopos-tracker'], FILES_TRACKER,
                                         [('tracker-cli', 1), ('skopos', 8), ('skopos.conf', 5)]),
        'tracker-cli.1': program_page('tracker-cli', 1, version, 'look at connection counts',
                                      programs['tracker-cli'], '',
                                      [('skopos-tracker', 8), ('skopos', 8)]),
        'skopos.conf.5': conf_page(version, run(bin_dir, ['skopos', 'agent', '--example-config']),
                                   run(bin_dir, ['skopos-tracker', '--example-config'])),
    }
    for name, text in pages.items():
        with open(os.path.join(out_dir, 'man', name), 'w') as f:
            f.write(text)
        with open(os.path.join(out_dir, 'man', name + '.gz'), 'wb') as raw:
            with gzip.GzipFile(filename='', mode='wb', compresslevel=9, fileobj=raw, mtime=0) as f:
                f.write(text.encode())
    for program, root in programs.items():
        with open(os.path.join(out_dir, 'bash-completion', program), 'w') as f:
            f.write(bash_completion(program, root))
        with open(os.path.join(out_dir, 'zsh', '_' + program), 'w') as f:
            f.write(zsh_completion(program, root))


if __name__ == '__main__':
    try:
        main()
    except (Failure, subprocess.TimeoutExpired, OSError) as error:
        sys.exit(f'gen-docs.py: {error}')
