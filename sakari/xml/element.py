"""A small, fast XML element for stanzas, and its serializer.

Why not xml.etree: stanzas are built and inspected on the hot path, and we
need namespace-aware serialization relative to the stream's default
namespace (``jabber:client``) without the prefix games ElementTree plays.
Attribute keys are plain names, ``xml:lang`` for the XML namespace, and
``{ns}name`` for any other namespace.
"""

from __future__ import annotations

from collections.abc import Iterator

from sakari.xml import ns as NS

__all__ = ["Element", "escape_text", "escape_attr"]


def escape_text(s: str) -> str:
    if "&" in s:
        s = s.replace("&", "&amp;")
    if "<" in s:
        s = s.replace("<", "&lt;")
    if ">" in s:
        s = s.replace(">", "&gt;")
    if "\r" in s:  # a parser would turn a literal CR (and CRLF) into LF
        s = s.replace("\r", "&#13;")
    return s


def escape_attr(s: str) -> str:
    """For a value in double quotes: &, < and " must be escaped, and whitespace other than
    spaces too, or attribute-value normalization turns it into spaces."""
    if "&" in s:
        s = s.replace("&", "&amp;")
    if "<" in s:
        s = s.replace("<", "&lt;")
    if '"' in s:
        s = s.replace('"', "&quot;")
    if "\n" in s:
        s = s.replace("\n", "&#10;")
    if "\t" in s:
        s = s.replace("\t", "&#9;")
    if "\r" in s:
        s = s.replace("\r", "&#13;")
    return s


class Element:
    """An XML element: a qualified name, attributes and mixed children."""

    __slots__ = ("name", "ns", "attrs", "children")

    def __init__(
        self,
        name: str,
        ns: str = NS.CLIENT,
        attrs: dict[str, str] | None = None,
        children: list[Element | str] | None = None,
    ) -> None:
        self.name = name
        self.ns = ns
        self.attrs = attrs if attrs is not None else {}
        self.children = children if children is not None else []

    # --- attributes -----------------------------------------------------
    def get(self, key: str, default: str | None = None) -> str | None:
        return self.attrs.get(key, default)

    def set(self, key: str, value: str) -> None:
        self.attrs[key] = value

    # --- children -------------------------------------------------------
    def append(self, child: Element | str) -> Element | str:
        self.children.append(child)
        return child

    def add(
        self, name: str, ns: str | None = None, attrs: dict[str, str] | None = None, text: str | None = None
    ) -> Element:
        """Append and return a new child; it inherits this element's namespace unless told."""
        child = Element(name, self.ns if ns is None else ns, attrs)
        if text is not None:
            child.children.append(text)
        self.children.append(child)
        return child

    def elements(self) -> Iterator[Element]:
        for c in self.children:
            if c.__class__ is Element:
                yield c  # type: ignore[misc]

    def find(self, name: str, ns: str | None = None) -> Element | None:
        """First child element with this name (and namespace, default: ours)."""
        want = self.ns if ns is None else ns
        for c in self.children:
            if c.__class__ is Element and c.name == name and c.ns == want:  # type: ignore[union-attr]
                return c  # type: ignore[return-value]
        return None

    def find_all(self, name: str, ns: str | None = None) -> list[Element]:
        want = self.ns if ns is None else ns
        return [c for c in self.elements() if c.name == name and c.ns == want]

    def first_child(self) -> Element | None:
        for c in self.children:
            if c.__class__ is Element:
                return c  # type: ignore[return-value]
        return None

    def remove(self, child: Element) -> None:
        self.children.remove(child)

    @property
    def text(self) -> str:
        children = self.children
        if len(children) == 1 and children[0].__class__ is str:  # the usual <body>text</body>: no join
            return children[0]  # type: ignore[return-value]
        return "".join([c for c in children if c.__class__ is str])  # type: ignore[misc]

    @text.setter
    def text(self, value: str) -> None:
        self.children = [c for c in self.children if c.__class__ is not str]
        self.children.append(value)

    def child_text(self, name: str, ns: str | None = None) -> str | None:
        child = self.find(name, ns)
        return None if child is None else child.text

    # --- copies and output ---------------------------------------------
    def copy(self) -> Element:
        """A deep copy; used only where a stanza must differ per recipient."""
        return Element(
            self.name,
            self.ns,
            dict(self.attrs),
            [c.copy() if c.__class__ is Element else c for c in self.children],  # type: ignore[union-attr]
        )

    def shallow_copy(self) -> Element:
        """A copy sharing the children: enough to change the top-level attributes."""
        return Element(self.name, self.ns, dict(self.attrs), self.children)

    def serialize(self, parent_ns: str = NS.CLIENT) -> str:
        out: list[str] = []
        _write(self, parent_ns, out)
        return "".join(out)

    def __bytes__(self) -> bytes:
        return self.serialize().encode()

    def __str__(self) -> str:
        return self.serialize()

    def __repr__(self) -> str:
        return f"<Element {{{self.ns}}}{self.name} {self.serialize()[:120]!r}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Element):
            return NotImplemented
        return (
            self.name == other.name
            and self.ns == other.ns
            and self.attrs == other.attrs
            and self.children == other.children
        )

    __hash__ = None  # type: ignore[assignment]


def _write(el: Element, parent_ns: str, out: list[str]) -> None:
    name = el.name
    ns = el.ns
    if ns == parent_ns:
        out.append("<" + name)
    else:
        out.append(f'<{name} xmlns="{escape_attr(ns)}"')
    if el.attrs:
        foreign = 0
        for key, value in el.attrs.items():
            if key[0] != "{":
                out.append(f' {key}="{escape_attr(value)}"')
            else:
                # An attribute in a namespace of its own (rare in XMPP): declare a prefix for it.
                attr_ns, _, local = key[1:].partition("}")
                out.append(f' xmlns:a{foreign}="{escape_attr(attr_ns)}" a{foreign}:{local}="{escape_attr(value)}"')
                foreign += 1
    children = el.children
    if not children:
        out.append("/>")
        return
    out.append(">")
    for c in children:
        if c.__class__ is str:
            out.append(escape_text(c))  # type: ignore[arg-type]
        else:
            _write(c, ns, out)  # type: ignore[arg-type]
    out.append(f"</{name}>")
