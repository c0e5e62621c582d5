package fakeaws

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"sort"
	"strconv"
	"time"
)

// node is an XML element: text or children. The EC2 and IAM Query
// protocols answer in plain XML without attributes (apart from the root's
// namespace), so a small tree is all the server needs.
type node struct {
	name string
	text *string
	kids []node
}

func el(name string, kids ...node) node { return node{name: name, kids: kids} }

func txt(name, v string) node { return node{name: name, text: &v} }

func num[T int | int32 | int64](name string, v T) node {
	return txt(name, strconv.FormatInt(int64(v), 10))
}

func flt(name string, v float64) node { return txt(name, strconv.FormatFloat(v, 'f', -1, 64)) }

func boolean(name string, v bool) node { return txt(name, strconv.FormatBool(v)) }

func ts(name string, t time.Time) node { return txt(name, t.UTC().Format(time.RFC3339)) }

// set is an EC2 list: <name><item>...</item>...</name>.
func set(name string, items ...node) node { return node{name: name, kids: items} }

func item(kids ...node) node { return el("item", kids...) }

// member is an IAM (awsQuery) list entry.
func member(kids ...node) node { return el("member", kids...) }

// optional drops empty text elements.
func optional(n node) []node {
	if n.text != nil && *n.text == "" {
		return nil
	}
	return []node{n}
}

func tagSet(tags map[string]string) node {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	items := make([]node, 0, len(keys))
	for _, k := range keys {
		items = append(items, item(txt("key", k), txt("value", tags[k])))
	}
	return set("tagSet", items...)
}

func (n node) write(buf *bytes.Buffer) {
	buf.WriteString("<" + n.name + ">")
	if n.text != nil {
		_ = xml.EscapeText(buf, []byte(*n.text))
	}
	for _, k := range n.kids {
		k.write(buf)
	}
	buf.WriteString("</" + n.name + ">")
}

// document renders a root element with a namespace.
func document(root, namespace string, kids ...node) []byte {
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	fmt.Fprintf(&buf, "<%s xmlns=%q>", root, namespace)
	for _, k := range kids {
		k.write(&buf)
	}
	buf.WriteString("</" + root + ">")
	return buf.Bytes()
}
