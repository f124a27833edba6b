"""The sitemaps.org 0.9 schemas (sitemap.xsd and siteindex.xsd, without the `##other` extension
points, which the shop never uses) and a validator for the documents the shop serves."""

from __future__ import annotations

from lxml import etree

NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
_HEAD = f"""<?xml version="1.0" encoding="UTF-8"?>
<xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema" targetNamespace="{NS}"
            xmlns="{NS}" elementFormDefault="qualified">
  <xsd:simpleType name="tLoc">
    <xsd:restriction base="xsd:anyURI">
      <xsd:minLength value="12"/>
      <xsd:maxLength value="2048"/>
    </xsd:restriction>
  </xsd:simpleType>
  <xsd:simpleType name="tLastmod">
    <xsd:union>
      <xsd:simpleType><xsd:restriction base="xsd:date"/></xsd:simpleType>
      <xsd:simpleType><xsd:restriction base="xsd:dateTime"/></xsd:simpleType>
    </xsd:union>
  </xsd:simpleType>
"""
URLSET_XSD = (
    _HEAD
    + """
  <xsd:element name="urlset">
    <xsd:complexType>
      <xsd:sequence>
        <xsd:element name="url" type="tUrl" maxOccurs="unbounded"/>
      </xsd:sequence>
    </xsd:complexType>
  </xsd:element>
  <xsd:complexType name="tUrl">
    <xsd:sequence>
      <xsd:element name="loc" type="tLoc"/>
      <xsd:element name="lastmod" type="tLastmod" minOccurs="0"/>
      <xsd:element name="changefreq" minOccurs="0">
        <xsd:simpleType>
          <xsd:restriction base="xsd:string">
            <xsd:enumeration value="always"/><xsd:enumeration value="hourly"/>
            <xsd:enumeration value="daily"/><xsd:enumeration value="weekly"/>
            <xsd:enumeration value="monthly"/><xsd:enumeration value="yearly"/>
            <xsd:enumeration value="never"/>
          </xsd:restriction>
        </xsd:simpleType>
      </xsd:element>
      <xsd:element name="priority" minOccurs="0">
        <xsd:simpleType>
          <xsd:restriction base="xsd:decimal">
            <xsd:minInclusive value="0.0"/><xsd:maxInclusive value="1.0"/>
          </xsd:restriction>
        </xsd:simpleType>
      </xsd:element>
    </xsd:sequence>
  </xsd:complexType>
</xsd:schema>
"""
)
INDEX_XSD = (
    _HEAD
    + """
  <xsd:element name="sitemapindex">
    <xsd:complexType>
      <xsd:sequence>
        <xsd:element name="sitemap" type="tSitemap" maxOccurs="unbounded"/>
      </xsd:sequence>
    </xsd:complexType>
  </xsd:element>
  <xsd:complexType name="tSitemap">
    <xsd:sequence>
      <xsd:element name="loc" type="tLoc"/>
      <xsd:element name="lastmod" type="tLastmod" minOccurs="0"/>
    </xsd:sequence>
  </xsd:complexType>
</xsd:schema>
"""
)
_SCHEMAS = {
    "urlset": etree.XMLSchema(etree.fromstring(URLSET_XSD.encode())),
    "sitemapindex": etree.XMLSchema(etree.fromstring(INDEX_XSD.encode())),
}
MAX_URLS = 50_000  # per sitemap and per index (sitemaps.org)
MAX_BYTES = 50 * 1024 * 1024


def validate(document: bytes, root: str) -> list[dict[str, str]]:
    """Check a sitemap (`urlset`) or an index (`sitemapindex`) against its schema and limits;
    the entries as {"loc": ..., "lastmod": ...}. Raises AssertionError naming what is wrong."""
    assert len(document) <= MAX_BYTES
    tree = etree.fromstring(document)
    assert tree.tag == f"{{{NS}}}{root}", tree.tag
    schema = _SCHEMAS[root]
    assert schema.validate(tree), schema.error_log
    entries = [
        {etree.QName(field).localname: (field.text or "") for field in entry} for entry in tree
    ]
    assert len(entries) <= MAX_URLS
    return entries
